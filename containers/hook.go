package containers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tundevfs/tundevfs/daemon"
	"github.com/tundevfs/tundevfs/jails"
)

// HookOptions configure `tundevfs oci-hook`.
type HookOptions struct {
	Socket   string // the daemon's control socket
	NetnsDev string // where the shared per-netns mount is (daemon.DefaultNetnsDev)
	// Binary is the tundevfs executable, run as `daemon` when none
	// answers (default: this process's own executable).
	Binary string
	// Stage overrides the stage read from the state's status: create
	// (createRuntime, prestart) or remove (poststop).
	Stage string
}

// Stages of the hook.
const (
	StageCreate = "create"
	StageRemove = "remove"
)

// Hook runs the OCI hook on the state read from stdin.
func Hook(stdin io.Reader, o HookOptions) error {
	var st specs.State
	if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&st); err != nil {
		return fmt.Errorf("oci-hook: read the OCI state on stdin: %w", err)
	}
	if st.ID == "" {
		return errors.New("oci-hook: the OCI state has no container id")
	}
	stage := o.Stage
	if stage == "" {
		stage = StageCreate
		if st.Status == specs.StateStopped {
			stage = StageRemove
		}
	}
	switch stage {
	case StageCreate:
		return hookCreate(&st, o)
	case StageRemove:
		return hookRemove(&st, o)
	}
	return fmt.Errorf("oci-hook: unknown stage %q (create, remove)", stage)
}

// hookCreate makes the container's jail.
func hookCreate(st *specs.State, o HookOptions) error {
	fail := func(err error) error { return fmt.Errorf("oci-hook: container %s: %w", st.ID, err) }
	if !jails.ValidName(st.ID) {
		return fail(errors.New("the id cannot name a jail (printable, no dots or slashes, at most 64 characters, not a number)"))
	}
	if st.Pid <= 0 {
		return fail(errors.New("the OCI state has no pid (run the hook at createRuntime or prestart)"))
	}
	spec, err := readBundle(st.Bundle)
	if err != nil {
		return fail(err)
	}
	args, err := JailArgs(st, spec)
	if err != nil {
		return fail(err)
	}
	if err := ensureDaemon(o); err != nil {
		return fail(err)
	}
	if _, err := daemon.Call(o.Socket, daemon.Request{Op: daemon.OpJailCreate, Args: args}); err != nil {
		if errors.Is(err, jails.ErrExists) && sameJail(o.Socket, st) {
			return nil // run twice (prestart and createRuntime): done already
		}
		return fail(err)
	}
	return nil
}

func readBundle(bundle string) (*specs.Spec, error) {
	if bundle == "" {
		return nil, errors.New("the OCI state has no bundle")
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("read bundle: %s: %w", filepath.Join(bundle, "config.json"), err)
	}
	return &spec, nil
}

// JailArgs are the `jail -c` parameters for the container: the jail is
// named after it, adopts its process's network namespace, and by default
// lets the process's user clone and own the nodes (dev_mode 0600). The
// annotations tundevfs.dev/clone_uid, clone_gid, dev_uid, dev_gid (ids as
// the container sees them), dev_mode (octal) and max_devices override
// that. Ids go through the config's uid/gid mappings when the container
// has a user namespace.
func JailArgs(st *specs.State, spec *specs.Spec) ([]string, error) {
	ann := map[string]string{}
	for k, v := range spec.Annotations {
		ann[k] = v
	}
	for k, v := range st.Annotations { // the runtime's word wins
		ann[k] = v
	}
	var uidMap, gidMap []specs.LinuxIDMapping
	if spec.Linux != nil && slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace }) {
		uidMap, gidMap = spec.Linux.UIDMappings, spec.Linux.GIDMappings
	}
	var uid, gid uint32
	if spec.Process != nil {
		uid, gid = spec.Process.User.UID, spec.Process.User.GID
	}
	params := map[string]string{
		"clone_uid": strconv.FormatUint(uint64(uid), 10),
		"dev_uid":   strconv.FormatUint(uint64(uid), 10),
		"dev_gid":   strconv.FormatUint(uint64(gid), 10),
		"dev_mode":  "0600",
	}
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, AnnotationPrefix)
		if !ok {
			continue
		}
		v := ann[k]
		switch name {
		case "enable":
			continue
		case "clone_uid", "clone_gid", "dev_uid", "dev_gid":
			if err := checkIDs(v, name == "clone_uid" || name == "clone_gid"); err != nil {
				return nil, fmt.Errorf("annotation %s=%q: %w", k, v, err)
			}
		case "dev_mode":
			if m, err := strconv.ParseUint(v, 8, 32); err != nil || m > 0o777 {
				return nil, fmt.Errorf("annotation %s=%q: want an octal mode up to 0777", k, v)
			}
		case "max_devices":
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return nil, fmt.Errorf("annotation %s=%q: want a number of devices, at least 1", k, v)
			}
		default:
			return nil, fmt.Errorf("annotation %s: unknown (clone_uid, clone_gid, dev_uid, dev_gid, dev_mode, max_devices, enable)", k)
		}
		params[name] = v
	}
	for _, p := range []struct {
		name string
		m    []specs.LinuxIDMapping
	}{{"clone_uid", uidMap}, {"dev_uid", uidMap}, {"clone_gid", gidMap}, {"dev_gid", gidMap}} {
		v, ok := params[p.name]
		if !ok {
			continue
		}
		mapped, err := mapIDs(v, p.m)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", p.name, v, err)
		}
		params[p.name] = mapped
	}
	args := []string{"name=" + st.ID, fmt.Sprintf("vnet=/proc/%d/ns/net", st.Pid)}
	for _, k := range []string{"clone_uid", "clone_gid", "dev_uid", "dev_gid", "dev_mode", "max_devices"} {
		if v, ok := params[k]; ok {
			args = append(args, k+"="+v)
		}
	}
	return args, nil
}

func checkIDs(v string, list bool) error {
	fields := []string{v}
	if list {
		fields = strings.Split(v, ",")
	}
	for _, f := range fields {
		if _, err := strconv.ParseUint(f, 10, 32); err != nil {
			if list {
				return errors.New("want numeric ids separated by commas")
			}
			return errors.New("want a numeric id")
		}
	}
	return nil
}

// mapIDs maps comma-separated container ids to host ids through m (no
// mapping: the same ids). An id the mapping does not cover is an error.
func mapIDs(v string, m []specs.LinuxIDMapping) (string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return "", err
		}
		host, err := MapID(uint32(id), m)
		if err != nil {
			return "", err
		}
		out = append(out, strconv.FormatUint(uint64(host), 10))
	}
	return strings.Join(out, ","), nil
}

// MapID maps a container id to the host id through an OCI id mapping; an
// empty mapping is the identity.
func MapID(id uint32, m []specs.LinuxIDMapping) (uint32, error) {
	if len(m) == 0 {
		return id, nil
	}
	for _, r := range m {
		if id >= r.ContainerID && uint64(id) < uint64(r.ContainerID)+uint64(r.Size) {
			return r.HostID + (id - r.ContainerID), nil
		}
	}
	return 0, fmt.Errorf("id %d is not mapped by the container's user namespace", id)
}
