// Package bench measures tundevfs against the direct /dev/net/tun path and
// prints one table: packet rates and latency for tun and tap at 64 and 1400
// bytes, clone latency, listing and stat cost with many devices, the
// daemon's memory and goroutines per device, jail removal time, the
// fast path (the handed TUN fd; iperf3 through a relay on it), and the
// restart pause of the crash-proof daemon (kill -9 of the server, and a
// planned restart, to the first request the new server serves).
//
// Contract:
//   - Every figure comes from a run on this machine, in network namespaces
//     the suite makes and deletes; packets go only to addresses inside them.
//     Everything the suite creates (namespaces, daemons, mounts, interfaces)
//     is removed when Run returns, also on error or cancellation.
//   - Each measurement is repeated Config.Reps times, the paths interleaved
//     within a repetition; the table shows the median and the spread
//     (min..max) over repetitions. Nothing is pinned to a CPU.
//   - The reference path ("direct") does the same packet work as tundevfs:
//     the same packets, the same sockets and counters, a TUN/TAP fd the
//     suite opens itself in the same namespace. Ratios are tundevfs over
//     direct.
//   - Targets are printed next to the figures and never asserted: the suite
//     reports, a person judges.
//   - The "jail" is the daemon's host jail inside a namespace the suite
//     made; jail removal is daemon shutdown (SIGTERM) with its devices.
//   - The restart part takes at least 5 repetitions whatever Config.Reps
//     says, and its reference column is the same request with no restart
//     (see restartPause).
//
// Adding a path: a Path (see paths) opens an Endpoint; an Endpoint may set
// writeBatch and readBatch to move many packets per call. That is the hook
// for TUNSBATCH once the ioctl work has landed: one more Path, and the
// table gains a column.
//
// Errors carry a short lowercase operation prefix and wrap their cause.
package bench
