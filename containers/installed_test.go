package containers

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/tundevfs/tundevfs/daemon"
)

// The files a package installs, checked as the runtimes read them. The
// environment names them (scripts/deb-check.sh passes the installed
// paths); without it the tests skip:
//
//	TUNDEVFS_CDI_SPEC   a CDI spec file (/etc/cdi/tundevfs.dev-tun.json)
//	TUNDEVFS_HOOKS_D    a hooks.d file (/usr/share/containers/oci/hooks.d/tundevfs.json)
//	TUNDEVFS_BINARY     the binary both must run (default /usr/bin/tundevfs)
func installedFile(t *testing.T, env string) (path, binary string) {
	t.Helper()
	path = os.Getenv(env)
	if path == "" {
		t.Skipf("%s is not set (scripts/deb-check.sh sets it to the installed file)", env)
	}
	binary = os.Getenv("TUNDEVFS_BINARY")
	if binary == "" {
		binary = "/usr/bin/tundevfs"
	}
	return path, binary
}

// TestInstalledCDISpec: the spec loads with the CDI library's ReadSpec
// (schema and content validation) and, as a runtime does, from a cache
// over its directory into an OCI spec: the shared per-netns mount at
// /dev/tundevfs and the hook at createRuntime and poststop, running the
// installed binary with the default socket and per-netns mount.
func TestInstalledCDISpec(t *testing.T) {
	path, binary := installedFile(t, "TUNDEVFS_CDI_SPEC")
	if filepath.Base(path) != SpecFileName() {
		t.Errorf("spec file %s: want the name %s", path, SpecFileName())
	}
	spec, err := cdi.ReadSpec(path, 0)
	if err != nil {
		t.Fatalf("cdi.ReadSpec: %v", err)
	}
	if spec.GetVendor()+"/"+spec.GetClass() != CDIKind {
		t.Errorf("kind %s/%s, want %s", spec.GetVendor(), spec.GetClass(), CDIKind)
	}

	cache, err := cdi.NewCache(cdi.WithSpecDirs(filepath.Dir(path)), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatalf("cdi.NewCache: %v", err)
	}
	if errs := cache.GetErrors()[path]; len(errs) > 0 {
		t.Fatalf("the CDI cache rejects %s: %v", path, errs)
	}
	oci := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	if unresolved, err := cache.InjectDevices(oci, CDIName); err != nil {
		t.Fatalf("inject %s: %v (unresolved %v)", CDIName, err, unresolved)
	}
	mounted := false
	for _, m := range oci.Mounts {
		if m.Destination == ContainerPath && m.Source == daemon.DefaultNetnsDev {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("injected mounts %+v: want %s at %s", oci.Mounts, daemon.DefaultNetnsDev, ContainerPath)
	}
	want := HookArgs(binary, daemon.DefaultSocket, daemon.DefaultNetnsDev)
	if oci.Hooks == nil {
		t.Fatal("no hooks injected")
	}
	for stage, hooks := range map[string][]specs.Hook{"createRuntime": oci.Hooks.CreateRuntime, "poststop": oci.Hooks.Poststop} {
		if len(hooks) != 1 || hooks[0].Path != binary || !slices.Equal(hooks[0].Args, want) {
			t.Errorf("%s hooks %+v: want one running %q", stage, hooks, want)
		}
	}
}

// TestInstalledHooksD: the hooks.d file decodes strictly as version 1.0.0
// of oci-hooks(5), runs the installed binary with the default socket and
// per-netns mount at createRuntime and poststop, and selects containers
// annotated tundevfs.dev/enable=true, not others.
func TestInstalledHooksD(t *testing.T) {
	path, binary := installedFile(t, "TUNDEVFS_HOOKS_D")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f HooksDFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if f.Version != "1.0.0" {
		t.Errorf("version %q", f.Version)
	}
	want := HookArgs(binary, daemon.DefaultSocket, daemon.DefaultNetnsDev)
	if f.Hook.Path != binary || !slices.Equal(f.Hook.Args, want) {
		t.Errorf("hook %s %q: want %s %q", f.Hook.Path, f.Hook.Args, binary, want)
	}
	if !slices.Equal(f.Stages, []string{"createRuntime", "poststop"}) {
		t.Errorf("stages %q", f.Stages)
	}
	selects := func(key, value string) bool {
		for k, v := range f.When.Annotations {
			if regexp.MustCompile(k).MatchString(key) && regexp.MustCompile(v).MatchString(value) {
				return true
			}
		}
		return false
	}
	if !selects(EnableAnnotation, "true") {
		t.Errorf("when %+v does not select %s=true", f.When, EnableAnnotation)
	}
	if selects(EnableAnnotation, "false") || selects("other/enable", "true") {
		t.Errorf("when %+v selects containers not annotated %s=true", f.When, EnableAnnotation)
	}
}
