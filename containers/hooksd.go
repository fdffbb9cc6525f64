package containers

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
)

// HooksDFile is a podman/CRI-O hooks.d file, version 1.0.0
// (containers/common pkg/hooks, oci-hooks(5)).
type HooksDFile struct {
	Version string     `json:"version"`
	Hook    HooksDHook `json:"hook"`
	When    HooksDWhen `json:"when"`
	Stages  []string   `json:"stages"`
}

// HooksDHook is the hook's command.
type HooksDHook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args,omitempty"`
	Timeout *int     `json:"timeout,omitempty"`
}

// HooksDWhen selects containers: annotation key and value regexps.
type HooksDWhen struct {
	Annotations map[string]string `json:"annotations"`
}

// HooksD returns the hooks.d JSON that runs the OCI hook at createRuntime
// and poststop for containers annotated tundevfs.dev/enable=true. The
// container needs the bind mount of the shared mount as well (a volume:
// -v /run/tundevfs/netns-dev:/dev/tundevfs).
func HooksD(binary, socket, netnsDev string) ([]byte, error) {
	for _, p := range []string{binary, socket, netnsDev} {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("oci-hook --hooks-d: %q: need an absolute path", p)
		}
	}
	f := HooksDFile{
		Version: "1.0.0",
		Hook:    HooksDHook{Path: binary, Args: HookArgs(binary, socket, netnsDev), Timeout: &hookTimeout},
		When: HooksDWhen{Annotations: map[string]string{
			"^" + regexp.QuoteMeta(EnableAnnotation) + "$": "^true$",
		}},
		Stages: []string{"createRuntime", "poststop"},
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
