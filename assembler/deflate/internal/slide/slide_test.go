package slide

import (
	"math/rand"
	"slices"
	"testing"
)

// input is n random entries, ending with the values around Half where a
// slide's outcome changes.
func input(n int, seed int64) []uint16 {
	t := make([]uint16, n)
	r := rand.New(rand.NewSource(seed))
	for i := range t {
		t[i] = uint16(r.Uint32())
	}
	edges := []uint16{0, 1, Half - 1, Half, Half + 1, 2*Half - 1, 0xffff}
	for i, v := range edges {
		if i < n {
			t[n-1-i] = v
		}
	}
	return t
}

// want slides t by the contract, branch by branch.
func want(t []uint16) []uint16 {
	w := make([]uint16, len(t))
	for i, v := range t {
		if v >= Half {
			w[i] = v - Half
		}
	}
	return w
}

func TestDown(t *testing.T) {
	for _, n := range []int{0, 1, 7, 31, 32, 33, 63, 64, 96, 1 << 15, 1<<17 + 17} {
		for _, f := range []struct {
			name string
			down func([]uint16)
		}{{"Down", Down}, {"go", down}} {
			// Slices starting off an 8-byte boundary too.
			for off := range 4 {
				tab := input(n+off, int64(n))[off:]
				w := want(tab)
				f.down(tab)
				if !slices.Equal(tab, w) {
					t.Errorf("%s, %d entries from entry %d: differs from the entry-by-entry slide", f.name, n, off)
				}
			}
		}
	}
}

// BenchmarkDown times one slide of compress/flate's level 2..9 tables
// (head 2^17 and prev 2^15 entries, 320 KiB); "go", the Go version
// other architectures run, is the baseline for amd64's SSE2.
func BenchmarkDown(b *testing.B) {
	for _, f := range []struct {
		name string
		down func([]uint16)
	}{{"go", down}, {"Down", Down}} {
		b.Run(f.name, func(b *testing.B) {
			t := input(1<<17+1<<15, 1)
			b.SetBytes(int64(2 * len(t)))
			for b.Loop() {
				f.down(t)
			}
		})
	}
}
