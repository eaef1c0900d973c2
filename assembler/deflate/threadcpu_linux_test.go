//go:build linux

package deflate

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time (user and system) of the calling OS thread;
// the caller locks its goroutine to the thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
