package codec

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// BenchmarkFind measures Find on a 32 MiB tar against a plain encode of
// the same input by the client's library (the baselines): a match costs
// one encode plus the comparison and the aborted candidates before it; a
// miss costs the aborted candidates only, a bounded amount per candidate
// whatever the input's size.
//
//	go test -run '^$' -bench Find -benchtime 3x ./assembler/codec/
func BenchmarkFind(b *testing.B) {
	raw := genTar(b, 10, 32<<20)
	blobs := map[string][]byte{
		"stdlib-6":      encode(b, mkEnc(b, EncoderStdlib, 6), raw),
		"stdlib-1":      encode(b, mkEnc(b, EncoderStdlib, 1), raw),
		"pgzip-default": encode(b, mkEnc(b, EncoderPgzip, 5), raw),
		"zstd-default":  encode(b, mkEnc(b, EncoderKlauspostZstd, int(zstd.SpeedDefault)), raw),
	}
	if _, err := exec.LookPath("gzip"); err == nil {
		cmd := exec.Command("gzip", "-6", "-n", "-c")
		cmd.Stdin = bytes.NewReader(raw)
		gnu, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		blobs["nomatch-gnu-gzip-6"] = gnu
		// The same with a Go-like header (OS 255): every XFL-0 candidate.
		allCands := bytes.Clone(gnu)
		allCands[9] = osUnknown
		blobs["nomatch-gnu-gzip-6-os255"] = allCands
	}

	baselines := map[string]func(io.Writer) (io.WriteCloser, error){
		"stdlib-6":      func(w io.Writer) (io.WriteCloser, error) { return stdgzip.NewWriterLevel(w, 6) },
		"stdlib-1":      func(w io.Writer) (io.WriteCloser, error) { return stdgzip.NewWriterLevel(w, 1) },
		"pgzip-default": func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriter(w), nil },
		"zstd-default":  func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) },
	}
	for _, name := range []string{"stdlib-6", "stdlib-1", "pgzip-default", "zstd-default"} {
		b.Run("baseline-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				w, err := baselines[name](io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(raw); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, name := range []string{"stdlib-6", "stdlib-1", "pgzip-default", "zstd-default",
		"nomatch-gnu-gzip-6", "nomatch-gnu-gzip-6-os255"} {
		blob, ok := blobs[name]
		if !ok {
			continue
		}
		b.Run("find-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			var st Stats
			for b.Loop() {
				var found bool
				var err error
				_, found, st, err = FindWithStats(context.Background(), opener(raw), opener(blob))
				if err != nil {
					b.Fatal(err)
				}
				if found == strings.HasPrefix(name, "nomatch") {
					b.Fatalf("found = %v", found)
				}
			}
			b.ReportMetric(float64(st.Trials), "trials")
			b.ReportMetric(float64(st.RawBytes)/(1<<20), "rawMiB")
		})
	}
}
