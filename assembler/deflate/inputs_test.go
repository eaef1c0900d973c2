package deflate

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
)

// realSize is how much of each real tar the tests use: the race detector
// slows encoding about tenfold.
var realSize = int64(2 << 20)

func init() {
	if raceEnabled {
		realSize = 192 << 10
	}
}

// Layer-like tars of Go's own tree (the pinned toolchain's, so the same
// on every machine), each at most realSize bytes of content.
var (
	// Source text.
	textTar = sync.OnceValue(func() []byte { return goTar(tb{}, "src", realSize, hasExt(".go")) })
	// Many small files.
	smallTar = sync.OnceValue(func() []byte {
		return goTar(tb{}, "src", realSize/2, func(p string, size int64) bool { return size < 2048 && !strings.HasSuffix(p, ".go") })
	})
	// Executables.
	binTar = sync.OnceValue(func() []byte {
		return goTar(tb{}, "pkg/tool", realSize, func(p string, _ int64) bool { return filepath.Ext(p) == "" })
	})
)

func hasExt(ext string) func(string, int64) bool {
	return func(p string, _ int64) bool { return filepath.Ext(p) == ext }
}

type input struct {
	name string
	data []byte
}

func realInputs() []input {
	return []input{{"text-tar", textTar()}, {"small-files-tar", smallTar()}, {"binaries-tar", binTar()}}
}

// text is n bytes of text-like data: pieces of Go source with random
// edits, so that there are matches at every distance.
func text(n int, seed uint64) []byte {
	src := textTar()[:min(len(textTar()), 1<<20)]
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n+1000)
	for len(b) < n {
		k := r.IntN(len(src) - 2000)
		b = append(b, src[k:k+r.IntN(2000)]...)
		if r.IntN(4) == 0 {
			b = append(b, byte(r.IntN(256)))
		}
	}
	return b[:n]
}

func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// raceCut shortens an input under the race detector, which slows
// encoding about tenfold.
func raceCut(n int) int {
	if raceEnabled {
		return min(n, 256<<10)
	}
	return n
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// edgeInputs are inputs at the sizes and shapes where encoders tend to
// break.
func edgeInputs() []input {
	zeros := func(n int) []byte { return make([]byte, n) }
	// An input whose last bytes repeat earlier ones, so that it ends
	// while a match is pending its lazy evaluation.
	lazyEnd := cat(text(5000, 1), text(5000, 1)[1000:1300])
	return []input{
		{"empty", nil},
		{"one-byte", []byte{'x'}},
		{"two-bytes", []byte("ab")},
		{"sixteen", []byte("0123456789abcdef")},
		{"seventeen", []byte("0123456789abcdefg")},
		{"127", text(127, 2)},
		{"128", text(128, 2)},
		{"zeros-64KiB", zeros(64 << 10)},
		{"zeros-1MiB", zeros(raceCut(1 << 20))},
		{"random-300KiB", random(300<<10, 3)},
		{"text-32KiB", text(32<<10, 4)},
		{"text-64KiB-1", text(64<<10-1, 5)},
		{"text-64KiB", text(64<<10, 5)},
		{"text-64KiB+1", text(64<<10+1, 5)},
		{"text-65535x2", text(2*65535, 6)},
		{"ends-mid-lazy-match", lazyEnd},
		{"ends-in-long-match", cat(text(3000, 8), text(3000, 8))},
		// Runs of zeros across the window slides at 64 KiB and 96 KiB.
		{"runs-across-slides", cat(text(60000, 9), zeros(50000), text(30000, 10), zeros(70000), text(20000, 11))},
		// Matches reaching exactly 32 KiB back.
		{"distance-32KiB", cat(text(32768, 12), text(32768, 12), text(32768, 12))},
		{"random-then-text", cat(random(70000, 13), text(200000, 14))},
		{"text-with-random", cat(text(100000, 15), random(100000, 16), text(100000, 15))},
	}
}
