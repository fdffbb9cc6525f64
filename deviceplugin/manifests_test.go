package deviceplugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tundevfs/tundevfs/daemon"
)

// decodeStrict decodes a manifest into the Kubernetes API type out as
// the API server does in strict mode: duplicate keys (sigs.k8s.io/yaml),
// and fields the type does not have, matched case-sensitively
// (sigs.k8s.io/json; yaml.UnmarshalStrict alone would take hostPid for
// hostPID, as encoding/json does), are errors.
func decodeStrict(t *testing.T, path string, out any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	strict, err := kjson.UnmarshalStrict(j, out, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, e := range strict {
		t.Errorf("%s: %v", path, e)
	}
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(spec.Containers), spec.InitContainers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flagValue is the value of --name V or --name=V in args (words), or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// sameOnHost reports whether path is, in c, inside a hostPath volume
// mounted at the same path as on the node, so that what c writes or
// names there is at that path on the node too.
func sameOnHost(spec corev1.PodSpec, c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		h := hostPathOf(spec, m.Name)
		if h != "" && h == m.MountPath && (path == h || strings.HasPrefix(path, h+"/")) {
			return true
		}
	}
	return false
}

func mountOf(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func hostPathOf(spec corev1.PodSpec, volume string) string {
	for _, v := range spec.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

func TestDaemonSetManifest(t *testing.T) {
	var ds appsv1.DaemonSet
	decodeStrict(t, "../deploy/kubernetes/daemonset.yaml", &ds)
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Fatalf("apiVersion/kind %s/%s", ds.APIVersion, ds.Kind)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels", k, v)
		}
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID: jails adopt pods' namespaces through /proc/PID/ns/net")
	}
	if !spec.HostNetwork {
		t.Error("hostNetwork: the host jail must be the node's namespace")
	}

	d := container(t, spec, "daemon")
	if len(d.Command) < 2 || d.Command[0] != "/usr/bin/tundevfs" || d.Command[1] != "daemon" {
		t.Errorf("daemon command %q", d.Command)
	}
	// The shared per-netns mount, the CDI spec's bind source, made by the
	// daemon inside the Bidirectional /run/tundevfs so the node sees it.
	netnsDev := flagValue(d.Command, "netns-dev")
	if netnsDev != daemon.DefaultNetnsDev {
		t.Errorf("daemon command %q: want --netns-dev %s", d.Command, daemon.DefaultNetnsDev)
	}
	if d.SecurityContext == nil || d.SecurityContext.Privileged == nil || !*d.SecurityContext.Privileged {
		t.Error("the daemon must be privileged (FUSE, tun, setns, Bidirectional propagation)")
	}
	m := mountOf(d, "/run/tundevfs")
	if m == nil || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("the daemon's /run/tundevfs mount %+v: want Bidirectional propagation", m)
	} else if hostPathOf(spec, m.Name) != "/run/tundevfs" {
		t.Errorf("volume %s is not the host's /run/tundevfs", m.Name)
	}

	p := container(t, spec, "device-plugin")
	if len(p.Command) < 2 || p.Command[1] != "k8s-device-plugin" {
		t.Errorf("device plugin command %q", p.Command)
	}
	dir := "/var/lib/kubelet/device-plugins"
	for _, a := range p.Command {
		if v, ok := strings.CutPrefix(a, "--kubelet-dir="); ok {
			dir = v
		}
	}
	m = mountOf(p, dir)
	if m == nil {
		t.Fatalf("the device plugin does not mount its kubelet directory %s", dir)
	}
	if hostPathOf(spec, m.Name) != "/var/lib/kubelet/device-plugins" {
		t.Errorf("volume %s is not the host's /var/lib/kubelet/device-plugins", m.Name)
	}
	if mountOf(p, "/run/tundevfs") == nil {
		t.Error("the device plugin cannot reach the daemon's socket for its health check")
	}

	// The init container puts the hook binary and the CDI spec on the
	// node, at paths the node's runtime finds: the binary in a hostPath
	// at the same path, the spec in the node's /etc/cdi or /var/run/cdi,
	// naming that binary and the daemon's per-netns mount.
	in := container(t, spec, "install")
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Name != "install" {
		t.Errorf("want the install step as the only init container")
	}
	script := strings.Join(in.Command, " ")
	words := strings.Fields(script)
	if !slices.Contains(words, "cdi") {
		t.Fatalf("install command %q does not run `tundevfs cdi`", in.Command)
	}
	bin := flagValue(words, "binary")
	if !filepath.IsAbs(bin) || !sameOnHost(spec, in, bin) {
		t.Errorf("cdi --binary %q: not a path of the node's, through a hostPath mounted at the same path", bin)
	}
	if !strings.Contains(script, " "+bin+" ") || !strings.Contains(script, "cp /usr/bin/tundevfs ") {
		t.Errorf("install command %q does not copy /usr/bin/tundevfs to %s", script, bin)
	}
	if !strings.Contains(script, "exec "+bin+" cdi") {
		t.Errorf("install command %q: want the spec written by the copy it names (exec %s cdi)", script, bin)
	}
	out := flagValue(words, "output-dir")
	if out != "/etc/cdi" && out != "/var/run/cdi" {
		t.Errorf("cdi --output-dir %q: want a CDI directory runtimes read (/etc/cdi, /var/run/cdi)", out)
	} else if !sameOnHost(spec, in, out) {
		t.Errorf("cdi --output-dir %s is not the node's %s", out, out)
	}
	if nd := flagValue(words, "netns-dev"); nd != "" && nd != netnsDev {
		t.Errorf("cdi --netns-dev %s, but the daemon mounts %s", nd, netnsDev)
	}
	if in.SecurityContext == nil || in.SecurityContext.Privileged != nil && *in.SecurityContext.Privileged {
		t.Error("the install step needs no privilege: say so in its securityContext")
	}
}

func TestExamplePodManifest(t *testing.T) {
	var pod corev1.Pod
	decodeStrict(t, "../deploy/kubernetes/example-pod.yaml", &pod)
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		t.Fatalf("apiVersion/kind %s/%s", pod.APIVersion, pod.Kind)
	}
	c := container(t, pod.Spec, "tunnel")
	q, ok := c.Resources.Limits[corev1.ResourceName(DefaultResource)]
	if !ok || q.Value() != 1 {
		t.Errorf("limits %v: want %s: 1", c.Resources.Limits, DefaultResource)
	}
	if !strings.Contains(strings.Join(c.Command, " "), "/dev/tundevfs/tun") {
		t.Errorf("command %q does not open /dev/tundevfs/tun", c.Command)
	}
	if sc := c.SecurityContext; sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("the example should show that no capability is needed")
	}
}
