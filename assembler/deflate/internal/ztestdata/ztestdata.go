// Package ztestdata makes the inputs the differential tests of
// assembler/deflate/zlib and assembler/deflate/gnu run against the
// original encoders: tars of real trees on the machine (Go's sources, the
// system's documentation and binaries) and hand-made edge cases aimed at
// the encoders' boundaries (window slides, the last bytes of the input,
// the stored/fixed/dynamic choice).
package ztestdata

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
)

// Input is a named test input.
type Input struct {
	Name string
	Data []byte
}

// Tar returns a tar of the regular files under root, in sorted path order,
// cut off after limit bytes. Unreadable files are left out.
func Tar(root string, limit int) []byte {
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		if buf.Len() >= limit {
			break
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		hdr := &tar.Header{Name: p, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if tw.WriteHeader(hdr) != nil {
			continue
		}
		tw.Write(b)
	}
	tw.Close()
	b := buf.Bytes()
	return b[:min(len(b), limit)]
}

// Tars returns tars of Go's sources, /usr/share/doc and /usr/bin, each
// cut to limit bytes (those missing on the machine are left out).
func Tars(limit int) []Input {
	var in []Input
	for _, r := range []struct{ name, root string }{
		{"goroot-src", filepath.Join(runtime.GOROOT(), "src")},
		{"usr-share-doc", "/usr/share/doc"},
		{"usr-bin", "/usr/bin"},
	} {
		if t := Tar(r.root, limit); len(t) > 0 {
			in = append(in, Input{r.name, t})
		}
	}
	return in
}

// Edges returns the hand-made edge cases; text is some real text (a tar)
// to cut pieces from, at least 1 MiB. small shrinks the larger ones (for
// the race detector's speed) without losing a boundary.
func Edges(text []byte, small bool) []Input {
	big := 1 << 20
	if small {
		big = 256 << 10
	}
	rnd := rand.New(rand.NewSource(14))
	random := func(n int) []byte {
		b := make([]byte, n)
		rnd.Read(b)
		return b
	}
	var in []Input
	add := func(name string, b []byte) { in = append(in, Input{name, b}) }
	add("empty", nil)
	add("one-byte", []byte{'x'})
	add("two-bytes", []byte("xy"))
	add("short-text", []byte("hello, hello, world: fixed codes beat dynamic ones on short input"))
	add("zeros-64k", make([]byte, 64<<10))
	add("zeros-1m", make([]byte, 1<<20))
	add("random-1m", random(big))
	for _, n := range []int{32<<10 - 1, 32 << 10, 32<<10 + 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 65274, 65275, 65536 + 262} {
		add("text-"+itoa(n), text[:n])
	}
	// Long matches across the window slides: a 40000-byte pattern
	// repeated, so 258-byte matches run through strstart >= wsize+MAX_DIST.
	pat := text[100000:140000]
	add("repeat-40000", bytes.Repeat(pat, 6))
	// A period just under the window (matches at distance 32506 = MAX_DIST)
	// and just over (no matches possible).
	add("period-32506", bytes.Repeat(random(32506), 4))
	add("period-32507", bytes.Repeat(random(32507), 4))
	// Random bytes with one copy whose source is exactly MAX_DIST back at
	// window index 65274 (the position where the slide happens one step
	// earlier when input arrives in pieces of 65535 bytes).
	add("maxdist-at-slide", maxDistAtSlide(rnd))
	// Text then random then text: stored blocks between compressed ones.
	mix := append(append(append([]byte(nil), text[:big*3/10]...), random(big/5)...), text[big*3/10:big/2]...)
	add("text-random-text", mix)
	// Inputs that end in the middle of a lazy match: a repeated phrase
	// cut at every length around the end.
	phrase := []byte("the quick brown fox jumps over the lazy dog; ")
	rep := bytes.Repeat(phrase, 2000)
	for cut := len(rep) - 12; cut <= len(rep); cut += 3 {
		add("lazy-end-"+itoa(cut), rep[:cut])
	}
	// The end of input decided by what gzip's window held before it.
	add("stale-tail", StaleTail(300000, 14))
	// Low-entropy bytes (few symbols, long runs of short matches).
	low := make([]byte, big*3/10)
	for i := range low {
		low[i] = "ab"[rnd.Intn(2)]
	}
	add("two-symbols", low)
	return in
}

// Big returns a 17 MiB input (past 1<<24 bytes: offsets that need more
// than 24 bits) of text and random bytes.
func Big(text []byte) Input {
	rnd := rand.New(rand.NewSource(24))
	var b bytes.Buffer
	for b.Len() < 17<<20 {
		b.Write(text[:min(len(text), 3<<20)])
		r := make([]byte, 256<<10)
		rnd.Read(r)
		b.Write(r)
	}
	return Input{"17m", b.Bytes()[:17<<20]}
}

// StaleTail returns n (> 65536) random bytes whose last 50 bytes occur
// twice before: the newer copy and the older one match all 50, and after
// them both come two zero bytes, then the older copy continues with the
// bytes 32766 before the input's end. GNU gzip compares the bytes after
// its input's end (two zeros, then what its window held one half window
// earlier) and so picks the older copy; an encoder that does not rebuild
// those bytes picks the newer one.
func StaleTail(n int, seed int64) []byte {
	rnd := rand.New(rand.NewSource(seed))
	d := make([]byte, n)
	rnd.Read(d)
	s := d[n-50:]
	older, newer := n-20000, n-10000
	copy(d[older:], s)
	d[older+50], d[older+51] = 0, 0
	copy(d[older+52:older+72], d[n-32766:n-32746])
	copy(d[newer:], s)
	d[newer+50], d[newer+51] = 0, 0
	d[newer+52] = d[n-32766] + 1
	return d
}

func maxDistAtSlide(rnd *rand.Rand) []byte {
	d := make([]byte, 200000)
	rnd.Read(d)
	copy(d[65274:65374], d[32768:32868])
	h := func(i int) int { return (int(d[i])<<10 ^ int(d[i+1])<<5 ^ int(d[i+2])) & 0x7fff }
	for range 20 {
		want := map[int]bool{h(65274): true, h(65275): true, h(65276): true}
		bad := false
		for i := 32771; i < 65274; i++ {
			if want[h(i)] {
				d[i] = byte(rnd.Intn(256))
				if i+1 < 65274 {
					d[i+1] = byte(rnd.Intn(256))
				}
				bad = true
			}
		}
		if !bad {
			break
		}
	}
	return d
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
