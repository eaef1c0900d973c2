package codec

import (
	"github.com/klauspost/compress/zstd"
)

// gzipCandidate is a (gzip encoder, level) pair to try.
type gzipCandidate struct {
	encoder string
	level   int
}

// gzipCommon lists, most used first, the encoders and levels real clients
// use (as their sources show): Go's compress/gzip at 6 (docker, BuildKit, containerd)
// and 1 (go-containerregistry: crane, ko; kaniko); pgzip at its default,
// which klauspost flate v1.18.0 runs as level 5 (podman, buildah, skopeo
// through containers/image), and the same levels of klauspost gzip.
func gzipCommon() []gzipCandidate {
	return []gzipCandidate{
		{EncoderStdlib, 6}, {EncoderPgzip, 5}, {EncoderKlauspostGzip, 5},
		{EncoderPgzip, 6}, {EncoderKlauspostGzip, 6},
		{EncoderStdlib, 1}, {EncoderPgzip, 1}, {EncoderKlauspostGzip, 1},
		{EncoderStdlib, 9}, {EncoderPgzip, 9}, {EncoderKlauspostGzip, 9},
	}
}

// gzipLevels is the order in which the remaining levels are tried.
func gzipLevels() []int { return []int{2, 3, 4, 5, 6, 7, 8, 1, 9, 0, -2} }

// zlibLevels is the order in which zlib-family levels (1..9) are tried:
// zlib's and GNU gzip's default 6, Python's gzip default 9, then 1 and
// the rest.
func zlibLevels() []int { return []int{6, 9, 1, 2, 3, 4, 5, 7, 8} }

// gzipCandidates narrows the candidates by the header, each tool by its
// conventions:
//
//   - Go-family writers (compress/gzip, klauspost gzip, pgzip) store OS
//     255, never FTEXT or FHCRC, and XFL from the level (9: 2, 1: 4,
//     other: 0);
//   - GNU gzip and pigz store OS 3, at most FNAME (a named file), the
//     same XFL rule, and no MTIME when writing a pipe or with -n;
//   - zlib writes its own header (OS 3 on Unix, MTIME 0, the same XFL
//     rule) for Python 3.11+'s gzip.compress(mtime=0) and zlib's gzip
//     mode; Python's GzipFile and gzip.compress write OS 255, the XFL rule
//     and the current time; tarfile's "w:gz" always XFL 2 and FNAME; Java's
//     GZIPOutputStream (Jib) XFL 0 at any level, MTIME 0, OS 0 (255 since
//     Java 16).
//
// The most used settings that fit come first, most likely tool first: a
// failed trial costs the input up to the first differing output byte
// (typically a block: tens to hundreds of KiB).
func gzipCandidates(h GzipHeader) []Encoding {
	type cand struct {
		encoder string
		level   int
		single  bool // pigz -p 1
	}
	byXFL := func(levels []int) []int {
		var out []int
		for _, l := range levels {
			if xflFor(l) == h.XFL {
				out = append(out, l)
			}
		}
		return out
	}
	plain := h.Flags&(flagText|flagHCRC) == 0
	goFamily := h.OS == osUnknown && plain
	gnuLike := h.OS == osUnix && h.Flags&^flagName == 0
	java := h.XFL == 0 && h.ModTime == 0 && h.Flags == 0 && (h.OS == 0 || h.OS == osUnknown)
	tarfile := h.XFL == 2 && h.OS == osUnknown && h.Flags == flagName
	// Python's gzip module stamps the time; Go-family writers in the wild
	// store 0 (or klauspost's zero time).
	python := h.OS == osUnknown && h.ModTime != 0 && h.ModTime != zeroTimeMTIME && plain

	var phases [][]cand
	zlibPhase := func(levels []int) []cand {
		var c []cand
		for _, l := range levels {
			c = append(c, cand{encoder: EncoderZlib, level: l})
		}
		return c
	}
	var goCommon []cand
	for _, c := range gzipCommon() {
		if xflFor(c.level) == h.XFL {
			goCommon = append(goCommon, cand{encoder: c.encoder, level: c.level})
		}
	}
	if gnuLike {
		// Level first, then tool: GNU gzip, pigz, zlib's own header.
		var byLevel []cand
		for _, l := range byXFL(zlibLevels()) {
			byLevel = append(byLevel, cand{encoder: EncoderGNUGzip, level: l}, cand{encoder: EncoderPigz, level: l},
				cand{encoder: EncoderZlib, level: l})
		}
		phases = append(phases, byLevel)
		var single []cand
		for _, l := range byXFL([]int{1, 2, 3}) {
			single = append(single, cand{encoder: EncoderPigz, level: l, single: true})
		}
		phases = append(phases, single)
	}
	if python {
		phases = append(phases, zlibPhase(byXFL(zlibLevels())))
	}
	phases = append(phases, goCommon)
	if plain {
		phases = append(phases, zlibPhase(byXFL(zlibLevels())))
	}
	if java || tarfile {
		levels := zlibLevels()
		if tarfile {
			levels = []int{9, 6, 1, 2, 3, 4, 5, 7, 8}
		}
		phases = append(phases, zlibPhase(levels))
	}
	if goFamily {
		var rest []cand
		for _, e := range []string{EncoderStdlib, EncoderPgzip, EncoderKlauspostGzip} {
			for _, l := range gzipLevels() {
				if xflFor(l) == h.XFL {
					rest = append(rest, cand{encoder: e, level: l})
				}
			}
		}
		phases = append(phases, rest)
	}
	// Within a phase, this build's encoders go first (no process to
	// start), then the helpers' classes.
	seen := make(map[cand]bool)
	var out []Encoding
	for _, list := range phases {
		var helped []Encoding
		for _, c := range list {
			if seen[c] {
				continue
			}
			seen[c] = true
			for i, v := range classesOf(c.encoder) {
				hdr := h
				enc := Encoding{Format: FormatGzip, Encoder: c.encoder, Version: v, Level: c.level, Gzip: &hdr}
				switch c.encoder {
				case EncoderPgzip:
					enc.BlockSize = pgzipDefaultBlockSize
				case EncoderPigz:
					enc.BlockSize = pigzDefaultBlockSize
					if c.single {
						enc.Pigz = &PigzParams{Single: true}
					}
				}
				if i == 0 {
					out = append(out, enc)
				} else {
					helped = append(helped, enc)
				}
			}
		}
		out = append(out, helped...)
	}
	return out
}

// zstdLevelWindow is klauspost's default window for a level.
func zstdLevelWindow(l zstd.EncoderLevel) int64 {
	if l == zstd.SpeedFastest {
		return 4 << 20
	}
	return 8 << 20
}

// zstdCandidates narrows klauspost zstd candidates by the frame header.
// The streaming encoder declares no content size, and its window is the
// level's (fastest 4 MiB, others 8 MiB) unless set; a stream that fits one
// block is a single-segment frame that tells nothing of the level. A
// declared content size (ResetContentSize) shrinks the window to fit it.
func zstdCandidates(f zstdFrame) []Encoding {
	if f.dictID {
		return nil
	}
	levels := []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedFastest, zstd.SpeedBetterCompression, zstd.SpeedBestCompression}
	var out []Encoding
	add := func(l zstd.EncoderLevel, p ZstdParams) {
		out = append(out, Encoding{Format: FormatZstd, Encoder: EncoderKlauspostZstd, Level: int(l), Zstd: &p})
	}
	switch {
	case f.single:
		for _, l := range levels {
			add(l, ZstdParams{Checksum: f.checksum})
		}
	case f.contentSize >= 0:
		for _, l := range levels {
			if zstdDeclaredWindow(zstdLevelWindow(l), f.contentSize) == f.window {
				add(l, ZstdParams{Checksum: f.checksum, ContentSize: f.contentSize})
			}
		}
	default:
		for _, l := range levels {
			if zstdLevelWindow(l) == f.window {
				add(l, ZstdParams{Checksum: f.checksum})
			}
		}
		if len(out) == 0 && f.window <= zstd.MaxWindowSize && f.window&(f.window-1) == 0 {
			for _, l := range levels {
				add(l, ZstdParams{Checksum: f.checksum, WindowSize: int(f.window)})
			}
		}
	}
	// Every class, this build's first (no process to start).
	var all []Encoding
	for _, v := range classesOf(EncoderKlauspostZstd) {
		for _, e := range out {
			e.Version = v
			all = append(all, e)
		}
	}
	return all
}

// zstdDeclaredWindow is the window klauspost declares for a stream of a
// known size (fastBase.WindowSize): the next power of two above it, at
// least 1 KiB, at most the level's window.
func zstdDeclaredWindow(levelWindow, size int64) int64 {
	if size <= 0 || size >= levelWindow {
		return levelWindow
	}
	w := int64(1024)
	for w <= size {
		w <<= 1
	}
	return w
}
