package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tundevfs/tundevfs/driver"
	"github.com/tundevfs/tundevfs/jails"
)

// countingReader counts what ReadRequest takes from the connection.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzReadRequest: whatever a client sends, decoding a request never
// panics, never reads past the cap, and either yields a request with an op
// that survives a round trip or a "bad request" error.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"ping"}` + "\n",
		`{"op":"mount","dir":"/mnt/dev","jail":"j1","allow_other":true}` + "\n",
		`{"op":"jail-create","args":["name=x","vnet","persist"],"dir":"command"}` + "\n",
		`{"op":"jail-watch","jail":"x","args":["42"]}`,
		`{"op":"jail-create","args":["name=x","vnet","persist"],"command":true}` + "\n",
		`{"op":"jail-watch","jail":"x","pid":42}`,
		`{"op":"jls","dying":true}`,
		`{"op":"jls","dir":""}`,
		`{"op":"frob"}`,
		`{"OP":"ping"}`,
		`null`,
		`{"op":"status"}{"op":"ping"}` + "\n",
		`{"op":""}` + "\n",
		`{"op":"ping","bogus":1}` + "\n",
		`{"op":"ping"` + "\n",
		"\n",
		"",
		`[1,2,3]`,
		`{"op":"sysctl","args":["net.link.tap.user_open=1"]}` + "\n" + "trailing",
		`{"op":"x","args":[` + strings.Repeat(`"a",`, 200) + `"a"]}` + "\n",
		strings.Repeat("a", MaxRequest+10),
		"\x00\xff{\"op\":\"ping\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		req, err := ReadRequest(cr)
		if cr.n > MaxRequest+1 {
			t.Fatalf("read %d bytes, over the cap", cr.n)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad request: ") {
				t.Fatalf("rejection without a clear message: %v", err)
			}
			if !reflect.DeepEqual(req, Request{}) {
				t.Fatalf("rejected, but returned %+v", req)
			}
			return
		}
		if req.Op == "" {
			t.Fatal("accepted a request without op")
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ReadRequest(bytes.NewReader(append(b, '\n')))
		if err != nil || !reflect.DeepEqual(normalize(back), normalize(req)) {
			t.Fatalf("round trip of %+v: %+v %v", req, back, err)
		}
	})
}

// normalize makes an empty Args and a nil one the same (omitempty).
func normalize(r Request) Request {
	if len(r.Args) == 0 {
		r.Args = nil
	}
	return r
}

// FuzzParseJailParams: whatever `jail -c` gets, parsing never panics; an
// accepted set is sane, a rejected one says "jail".
func FuzzParseJailParams(f *testing.F) {
	for _, s := range []string{
		"name=web vnet path=/d persist clone_uid=1000,1001 clone_gid=27 dev_uid=1000 dev_gid=5 dev_mode=0660 max_devices=4",
		"name=x vnet=/run/netns/x",
		"name=x vnet=/proc/42/ns/net path=/run/ct/dev",
		"name=x path=/",
		"name=x path=relx",
		"name=x vnet vnet=/p",
		"name=1234 persist",
		"name=a.b persist",
		"name=x dev_mode=999",
		"name=x dev_mode=-1",
		"name=x max_devices=0",
		"name=x max_devices=99999999999999999999",
		"name=x clone_uid=,",
		"name=x clone_uid=4294967296",
		"persist=false name=x",
		"frob",
		"",
		"name=x\x00path=/a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		p, err := ParseJailParams(args)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "jail") {
				t.Fatalf("rejection without a clear message: %v", err)
			}
			if p != nil {
				t.Fatalf("rejected, but returned %+v", p)
			}
			return
		}
		if !jails.ValidName(p.Name) {
			t.Fatalf("accepted name %q", p.Name)
		}
		if p.Vnet && p.VnetPath != "" {
			t.Fatal("accepted vnet and vnet=PATH together")
		}
		if p.Path != "" && (!filepath.IsAbs(p.Path) || p.Path == "/" || filepath.Clean(p.Path) != p.Path) {
			t.Fatalf("accepted path %q", p.Path)
		}
		if p.Settings.Owner.Mode > 0o777 {
			t.Fatalf("accepted settings %+v", p.Settings)
		}
		if l := p.Settings.MaxDevices; l < 1 || l > driver.MaxUnit+1 {
			t.Fatalf("accepted max_devices %d", l)
		}
	})
}
