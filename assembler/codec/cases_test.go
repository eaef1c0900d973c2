package codec

import (
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// encCase is an encoder setting and how a client's library writes it.
type encCase struct {
	name string
	enc  Encoding
	// lib writes what enc reproduces as a client calls its library (nil:
	// no plain library call does).
	lib func(w io.Writer) (io.WriteCloser, error)
	// maxTrials bounds Find's trials on this case's output (0: only by the
	// candidate count); the common ones also run under -race.
	maxTrials int
	unfound   bool // Find is not expected to find it
}

// encCases lists every supported encoder and level, what real clients
// call, and parameters beyond the level. rawSize is the raw size for the
// one case that declares it.
func encCases(tb testing.TB, rawSize int) []encCase {
	var cs []encCase
	add := func(name string, enc Encoding, lib func(io.Writer) (io.WriteCloser, error)) {
		cs = append(cs, encCase{name: name, enc: enc, lib: lib})
	}
	for _, l := range []int{-2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		add(fmt.Sprintf("%s/%d", EncoderStdlib, l), mkEnc(tb, EncoderStdlib, l),
			func(w io.Writer) (io.WriteCloser, error) { return stdgzip.NewWriterLevel(w, l) })
		add(fmt.Sprintf("%s/%d", EncoderKlauspostGzip, l), mkEnc(tb, EncoderKlauspostGzip, l),
			func(w io.Writer) (io.WriteCloser, error) { return kgzip.NewWriterLevel(w, l) })
		add(fmt.Sprintf("%s/%d", EncoderPgzip, l), mkEnc(tb, EncoderPgzip, l),
			func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriterLevel(w, l) })
	}
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		add(fmt.Sprintf("%s/%d", EncoderKlauspostZstd, l), mkEnc(tb, EncoderKlauspostZstd, int(l)),
			func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstd.WithEncoderLevel(l)) })
	}

	// What real clients call.
	add("docker/stdlib-default", mkEnc(tb, EncoderStdlib, 6),
		func(w io.Writer) (io.WriteCloser, error) {
			return stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
		})
	add("buildah/pgzip-default", mkEnc(tb, EncoderPgzip, 5),
		func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriter(w), nil })
	add("containerd/zstd-default", mkEnc(tb, EncoderKlauspostZstd, int(zstd.SpeedDefault)),
		func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) })
	add("ggcr/zstd-level1", mkEnc(tb, EncoderKlauspostZstd, int(zstd.SpeedFastest)),
		func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(1)))
		})

	// Parameters beyond the level.
	nocrc := mkEnc(tb, EncoderKlauspostZstd, int(zstd.SpeedDefault))
	nocrc.Zstd = &ZstdParams{Checksum: false}
	add("klauspost-zstd/2-nocrc", nocrc,
		func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstd.WithEncoderCRC(false)) })
	window := mkEnc(tb, EncoderKlauspostZstd, int(zstd.SpeedDefault))
	window.Zstd = &ZstdParams{Checksum: true, WindowSize: 1 << 20}
	add("klauspost-zstd/2-window1m", window,
		func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstd.WithWindowSize(1<<20)) })
	sized := mkEnc(tb, EncoderKlauspostZstd, int(zstd.SpeedDefault))
	sized.Zstd = &ZstdParams{Checksum: true, ContentSize: int64(rawSize)}
	add("klauspost-zstd/2-sized", sized, nil)
	blocks := mkEnc(tb, EncoderPgzip, 5)
	blocks.BlockSize = 256 << 10
	add("klauspost-pgzip/5-block256k", blocks, func(w io.Writer) (io.WriteCloser, error) {
		z := pgzip.NewWriter(w)
		return z, z.SetConcurrency(256<<10, 3)
	})
	hdr := mkEnc(tb, EncoderStdlib, 6)
	hdr.Gzip = &GzipHeader{Flags: flagName | flagComment | flagExtra, ModTime: 1700000000, OS: 3,
		Name: "layer.tar", Comment: "caf\u00e9 \u00ff", Extra: []byte("AB\x02\x00hi")}
	add("go-stdlib/6-header", hdr, func(w io.Writer) (io.WriteCloser, error) {
		z, err := stdgzip.NewWriterLevel(w, 6)
		z.Header = stdgzip.Header{Name: "layer.tar", Comment: "caf\u00e9 \u00ff",
			Extra: []byte("AB\x02\x00hi"), ModTime: time.Unix(1700000000, 0), OS: 3}
		return z, err
	})
	hcrc := mkEnc(tb, EncoderKlauspostGzip, 6)
	hcrc.Gzip = &GzipHeader{Flags: flagHCRC | flagText | flagName, OS: osUnknown, Name: "x"}
	add("klauspost-gzip/6-hcrc", hcrc, nil)

	for i := range cs {
		switch cs[i].name {
		case "go-stdlib/6", "go-stdlib/1", "docker/stdlib-default", "klauspost-zstd/2",
			"containerd/zstd-default", "ggcr/zstd-level1", "klauspost-zstd/1":
			cs[i].maxTrials = 1
		case "klauspost-pgzip/5", "buildah/pgzip-default":
			cs[i].maxTrials = 2
		case "klauspost-pgzip/5-block256k": // Find tries pgzip's default block size only
			cs[i].unfound = true
		}
	}
	return cs
}

// underRace tells whether a round trip runs under -race: what clients use,
// header variants, and the goroutine-running encoders (pgzip, zstd) at
// their fast levels. The rest run the same code paths slower.
func (c encCase) underRace() bool {
	return c.maxTrials > 0 || c.enc.Gzip != nil ||
		c.enc.Encoder == EncoderKlauspostZstd && c.enc.Level <= int(zstd.SpeedDefault) ||
		c.enc.Encoder == EncoderPgzip && c.enc.Level == 1
}
