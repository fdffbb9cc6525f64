package daemon

import (
	"strings"
	"testing"
)

// Defect 8: path= must be absolute and not /; a bad name is refused at
// parse time.
func TestParseJailParamsRefusesBadPaths(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
	}{
		{"path=/", "over /"},
		{"path=//", "over /"},
		{"path=/tmp/..", "over /"},
		{"path=relx", "not an absolute path"},
		{"path=", "not an absolute path"},
		{"path=./x", "not an absolute path"},
	} {
		_, err := ParseJailParams([]string{"name=x", "vnet", tc.arg})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jail -c %s: %v, want an error containing %q", tc.arg, err, tc.want)
		}
	}
	p, err := ParseJailParams([]string{"name=x", "path=/run/x/../dev/"})
	if err != nil || p.Path != "/run/dev" {
		t.Errorf("path=/run/x/../dev/: %+v %v, want /run/dev", p, err)
	}
	if _, err := ParseJailParams([]string{"name=a.b", "vnet"}); err == nil || !strings.Contains(err.Error(), "bad jail name") {
		t.Errorf("name=a.b: %v", err)
	}
}
