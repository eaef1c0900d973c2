// Package crashtest holds chunkyard's power-loss and fault-injection
// tests; it has no code of its own outside them.
//
// The kill tests (cmd/chunkyard) SIGKILL a real server, but the kernel
// still writes its page cache, so they cannot catch a missing fsync. The
// tests here run the real registry.Service, refgraph index, chunk store
// (local packs, or a remote object store standing in for S3) and gc
// collector, through the real ocihttp handler, on Pebble's crashable
// in-memory file system (vfs.NewCrashableMem). At a random file operation
// they take the file system's crash clone, which keeps what was fsynced and
// a random part of what was not, as a power loss would; then they reopen
// everything on the clone and check that every push acknowledged before
// that instant is there and byte-exact, that everything the index shows
// reads back verified, and that fsck is clean. Other tests inject disk-full
// and I/O errors (vfs/errorfs) and check that clients get a clear error and
// nothing half-written becomes visible.
//
// CHUNKYARD_CRASH_POINTS sets how many crash points TestPowerLoss runs
// (default 40, 12 under the race detector), CHUNKYARD_FAULT_TRIALS how
// many trials TestDiskFaults runs (default 30, 6 under the race
// detector); CHUNKYARD_CRASH_SEED replays a run, and CHUNKYARD_CRASH_LOG
// names a file that gets every log line. The test command runs 1,000 crash
// points and 100 fault trials without the race detector.
//
// A seed fixes the workload, where the power fails and what it keeps, but
// not how background goroutines (the pack uploader, Pebble's, two clients
// pushing at once) interleave, nor the random names of packs and uploads:
// a replay usually, not always, reaches the same state. So each bug these
// tests found is pinned by a deterministic test in its package, whose
// comment names the chain seed that found it.
package crashtest
