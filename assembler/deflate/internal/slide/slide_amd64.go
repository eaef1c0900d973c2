//go:build !purego

package slide

// Down subtracts Half from every entry of t, saturating at 0.
func Down(t []uint16) {
	n := len(t) &^ 31
	downSSE2(t[:n])
	down(t[n:])
}

// downSSE2 is Down for len(t) a multiple of 32, 32 entries per iteration.
// SSE2 is part of every amd64 CPU, so nothing is detected at run time.
//
//go:noescape
func downSSE2(t []uint16)
