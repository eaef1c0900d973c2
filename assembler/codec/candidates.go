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

// gzipCandidates narrows the candidates by the header: Go-family writers
// derive XFL from the level, so only levels giving the stored XFL can
// match. A header no Go-family writer writes by default (an OS other than
// 255, FTEXT, FHCRC: GNU gzip, pigz, zlib) gets only the common levels, as
// a cheap check; others get every level.
func gzipCandidates(h GzipHeader) []Encoding {
	phases := [][]gzipCandidate{gzipCommon()}
	if h.OS == osUnknown && h.Flags&(flagText|flagHCRC) == 0 {
		var rest []gzipCandidate
		for _, e := range []string{EncoderStdlib, EncoderPgzip, EncoderKlauspostGzip} {
			for _, l := range gzipLevels() {
				rest = append(rest, gzipCandidate{e, l})
			}
		}
		phases = append(phases, rest)
	}
	if h.OS == osUnix && h.Flags&(flagText|flagHCRC|flagExtra|flagComment) == 0 {
		// GNU gzip (helper only): its default 6, then -9, -1, the rest.
		var gnu []gzipCandidate
		for _, l := range []int{6, 9, 1, 2, 3, 4, 5, 7, 8} {
			gnu = append(gnu, gzipCandidate{EncoderGNUGzip, l})
		}
		phases = append(phases, gnu)
	}
	// Within a phase, this build's encoders go first (no process to
	// start), then the helpers' classes.
	seen := make(map[gzipCandidate]bool)
	var out []Encoding
	for _, list := range phases {
		var helped []Encoding
		for _, c := range list {
			if seen[c] || xflFor(c.level) != h.XFL {
				continue
			}
			seen[c] = true
			for i, v := range classesOf(c.encoder) {
				hdr := h
				enc := Encoding{Format: FormatGzip, Encoder: c.encoder, Version: v, Level: c.level, Gzip: &hdr}
				if c.encoder == EncoderPgzip {
					enc.BlockSize = pgzipDefaultBlockSize
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
