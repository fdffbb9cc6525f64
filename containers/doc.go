// Package containers connects tundevfs to container runtimes through their
// two static extension points, OCI hooks and CDI (SPEC §8):
//
//   - Hook (hook.go) is `tundevfs oci-hook`: at createRuntime (or prestart)
//     it reads the OCI state on stdin and the bundle's config.json and makes
//     a jail named after the container on /proc/PID/ns/net, its
//     parameters from the tundevfs.dev/ annotations and the container's
//     process user (mapped through the user namespace's uid/gid mappings);
//     at poststop it removes that jail, which is idempotent (the daemon
//     also removes it when the container's process exits). It starts a
//     daemon with the shared per-netns mount if none answers, and makes
//     sure the per-netns mount is there. On failure it returns one error,
//     one line, and the daemon has made no jail.
//   - HooksD (hooksd.go) is the podman/CRI-O hooks.d file running the same
//     hook for containers annotated tundevfs.dev/enable=true.
//   - CDISpec (cdi.go) is the CDI spec of tundevfs.dev/tun=default: a bind
//     mount of the shared per-netns mount at /dev/tundevfs and the hooks,
//     validated and written with the CDI project's own library.
//
// Nothing here keeps state: each hook run is one process that talks to the
// daemon over its control socket. No locks.
package containers

// Fixed names other parts (packages, recipes, runtimes) depend on.
const (
	// CDIKind is the CDI kind (vendor/class) of tundevfs devices.
	CDIKind = "tundevfs.dev/tun"
	// CDIDevice is the one device of the kind: the shared mount.
	CDIDevice = "default"
	// CDIName is the fully qualified device name runtimes are given.
	CDIName = CDIKind + "=" + CDIDevice
	// ContainerPath is where containers see their tunnels by default.
	ContainerPath = "/dev/tundevfs"
	// AnnotationPrefix starts every annotation the hook reads.
	AnnotationPrefix = "tundevfs.dev/"
	// EnableAnnotation selects containers for the hooks.d hook.
	EnableAnnotation = AnnotationPrefix + "enable"
)
