// Package stress holds TestStress: a mixed workload against a real daemon,
// in a network namespace the test makes, for a set time (STRESS_DURATION or
// -stress.duration, default 10m; 30s under -short, which `make test`
// runs). Workers clone, open, read and write devices, destroy them
// (ifconfig destroy and transient close), create and remove jails, rename
// interfaces, mount and unmount device directories and SIGKILL clients
// they started, all in parallel. After a warm-up, every minute and at the
// end the workers pause between iterations and the daemon's fds (by what
// they point to), goroutines, threads, units in use, devices, jails,
// interfaces, namespaces, mounts and RSS are checked against a settled
// baseline with internal/testenv; a table of the figures is printed.
//
// `make stress` runs it with the long duration. Everything it makes is
// removed when it ends, also when it fails.
package stress
