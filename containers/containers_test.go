package containers

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

func userns(uid, gid uint32) *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{User: specs.User{UID: uid, GID: gid}},
		Linux: &specs.Linux{
			Namespaces:  []specs.LinuxNamespace{{Type: specs.NetworkNamespace}, {Type: specs.UserNamespace}},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}},
		},
	}
}

func TestJailArgs(t *testing.T) {
	st := &specs.State{ID: "ct1", Pid: 42}
	for _, tc := range []struct {
		name string
		spec *specs.Spec
		ann  map[string]string
		want []string
		err  string
	}{
		{"plain", &specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 1000}}}, nil,
			[]string{"name=ct1", "vnet=/proc/42/ns/net", "clone_uid=1000", "dev_uid=1000", "dev_gid=1000", "dev_mode=0600"}, ""},
		{"userns", userns(1000, 100), nil,
			[]string{"name=ct1", "vnet=/proc/42/ns/net", "clone_uid=101000", "dev_uid=101000", "dev_gid=200100", "dev_mode=0600"}, ""},
		{"annotations", userns(1000, 100), map[string]string{
			"tundevfs.dev/clone_uid": "1000,1001", "tundevfs.dev/clone_gid": "5", "tundevfs.dev/dev_mode": "0660",
			"tundevfs.dev/max_devices": "4", "tundevfs.dev/enable": "true", "other/x": "y"},
			[]string{"name=ct1", "vnet=/proc/42/ns/net", "clone_uid=101000,101001", "clone_gid=200005", "dev_uid=101000", "dev_gid=200100", "dev_mode=0660", "max_devices=4"}, ""},
		{"bad mode", userns(0, 0), map[string]string{"tundevfs.dev/dev_mode": "0999"}, nil, "tundevfs.dev/dev_mode"},
		{"bad uid", userns(0, 0), map[string]string{"tundevfs.dev/dev_uid": "me"}, nil, "want a numeric id"},
		{"unknown", userns(0, 0), map[string]string{"tundevfs.dev/clone_user": "1"}, nil, "unknown"},
		{"zero devices", userns(0, 0), map[string]string{"tundevfs.dev/max_devices": "0"}, nil, "at least 1"},
		{"unmapped", userns(0, 0), map[string]string{"tundevfs.dev/dev_uid": "70000"}, nil, "not mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *st
			s.Annotations = tc.ann
			got, err := JailArgs(&s, tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got %v, %v; want one line with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v\nwant %v", got, err, tc.want)
			}
		})
	}
}

// TestCDISpec: the spec is the same for the same flags, the CDI library
// loads it from a spec directory, and injecting tundevfs.dev/tun=default
// into an OCI spec adds the bind mount and both hooks, as a runtime does.
func TestCDISpec(t *testing.T) {
	o := CDIOptions{Binary: "/usr/bin/tundevfs", Socket: "/run/tundevfs/tundevfs.sock", NetnsDev: "/run/tundevfs/netns-dev"}
	a, err := CDISpec(o)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := MarshalCDISpec(a)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := CDISpec(o)
	b2, _ := MarshalCDISpec(b)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two runs with the same flags differ")
	}
	dir := t.TempDir()
	if _, err := WriteCDISpec(a, dir); err != nil {
		t.Fatal(err)
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	oci := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	if _, err := cache.InjectDevices(oci, CDIName); err != nil {
		t.Fatal(err)
	}
	if len(oci.Mounts) != 1 || oci.Mounts[0].Source != o.NetnsDev || oci.Mounts[0].Destination != ContainerPath {
		t.Fatalf("mounts: %+v", oci.Mounts)
	}
	if oci.Hooks == nil || len(oci.Hooks.CreateRuntime) != 1 || len(oci.Hooks.Poststop) != 1 ||
		!slices.Equal(oci.Hooks.CreateRuntime[0].Args, HookArgs(o.Binary, o.Socket, o.NetnsDev)) {
		t.Fatalf("hooks: %+v", oci.Hooks)
	}
	// A relative path is refused before anything is written.
	o.NetnsDev = "netns-dev"
	if _, err := CDISpec(o); err == nil {
		t.Fatal("relative netns-dev accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, SpecFileName())); err != nil {
		t.Fatal(err)
	}
}

func TestHooksD(t *testing.T) {
	b, err := HooksD("/usr/bin/tundevfs", "/run/tundevfs/tundevfs.sock", "/run/tundevfs/netns-dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": "1.0.0"`, `"^tundevfs\\.dev/enable$": "^true$"`, `"createRuntime"`, `"poststop"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("hooks.d JSON lacks %s:\n%s", want, b)
		}
	}
}
