package containers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// CDIOptions are what the CDI spec depends on: the flags of `tundevfs cdi`.
type CDIOptions struct {
	Binary        string // the tundevfs executable the hooks run (absolute)
	Socket        string // the daemon's control socket, passed to the hook
	NetnsDev      string // the host path of the shared per-netns mount
	ContainerPath string // where containers see it (ContainerPath)
}

func (o *CDIOptions) defaults() {
	if o.ContainerPath == "" {
		o.ContainerPath = ContainerPath
	}
}

// HookArgs is the command line of the OCI hook, argv[0] included.
func HookArgs(binary, socket, netnsDev string) []string {
	return []string{binary, "--socket", socket, "oci-hook", "--netns-dev", netnsDev}
}

// hookTimeout is the seconds a runtime gives the hook: it answers in far
// less, starting a daemon included.
var hookTimeout = 10

// CDISpec builds the raw CDI spec of tundevfs.dev/tun=default: the shared
// per-netns mount bound at the container path, the hook at createRuntime
// (make the container's jail) and poststop (remove it). It is the same
// for the same options, field for field.
func CDISpec(o CDIOptions) (*cdispec.Spec, error) {
	o.defaults()
	for _, p := range []struct{ flag, v string }{{"binary", o.Binary}, {"socket", o.Socket}, {"netns-dev", o.NetnsDev}, {"container-path", o.ContainerPath}} {
		if !filepath.IsAbs(p.v) {
			return nil, fmt.Errorf("cdi: %s %q: need an absolute path", p.flag, p.v)
		}
	}
	args := HookArgs(o.Binary, o.Socket, o.NetnsDev)
	hook := func(stage string) *cdispec.Hook {
		return &cdispec.Hook{HookName: stage, Path: o.Binary, Args: args, Timeout: &hookTimeout}
	}
	spec := &cdispec.Spec{
		Kind: CDIKind,
		Devices: []cdispec.Device{{
			Name: CDIDevice,
			ContainerEdits: cdispec.ContainerEdits{
				Mounts: []*cdispec.Mount{{
					HostPath:      o.NetnsDev,
					ContainerPath: o.ContainerPath,
					Type:          "bind",
					Options:       []string{"bind", "nosuid", "nodev", "noexec"},
				}},
				Hooks: []*cdispec.Hook{hook(cdi.CreateRuntimeHook), hook(cdi.PoststopHook)},
			},
		}},
	}
	v, err := cdispec.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	spec.Version = v
	return spec, nil
}

// SpecFileName is the spec's file name in a CDI directory.
func SpecFileName() string { return cdi.GenerateSpecName("tundevfs.dev", "tun") + ".json" }

// WriteCDISpec validates spec with the CDI library and writes it into dir
// (/etc/cdi, /var/run/cdi) as SpecFileName, replacing an older one. It
// returns the file's path.
func WriteCDISpec(spec *cdispec.Spec, dir string) (string, error) {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if err != nil {
		return "", fmt.Errorf("cdi: %w", err)
	}
	if err := cache.WriteSpec(spec, SpecFileName()); err != nil {
		return "", fmt.Errorf("cdi: write spec into %s: %w", dir, err)
	}
	return filepath.Join(dir, SpecFileName()), nil
}

// MarshalCDISpec validates spec with the CDI library (it writes it into a
// scratch directory and reads it back, as a runtime would) and returns it
// as indented JSON.
func MarshalCDISpec(spec *cdispec.Spec) ([]byte, error) {
	dir, err := os.MkdirTemp("", "tundevfs-cdi-")
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	defer os.RemoveAll(dir)
	path, err := WriteCDISpec(spec, dir)
	if err != nil {
		return nil, err
	}
	if _, err := cdi.ReadSpec(path, 0); err != nil {
		return nil, fmt.Errorf("cdi: read back: %w", err)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	return append(b, '\n'), nil
}
