package tarsplit

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// sink discards writes; unlike io.Discard it has no ReadFrom, so io.Copy
// into it moves bytes through a buffer as a real consumer would.
type sink struct{}

func (sink) Write(p []byte) (int, error) { return len(p), nil }

// reader hides bytes.Reader's WriteTo for the same reason.
type reader struct{ io.Reader }

// benchTar builds a ~64 MiB tar shaped like a rootfs layer: thousands of
// small files (most under 16 KiB, directories every 50 files) and a few
// large ones.
func benchTar(b *testing.B) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var ms []member
	total := 0
	for i := 0; total < 40<<20; i++ {
		if i%50 == 0 {
			ms = append(ms, member{hdr: tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("usr/lib/d%d/", i), Mode: 0o755}})
		}
		n := int(r.ExpFloat64() * 6000)
		ms = append(ms, member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/lib/d%d/file-%d.so", i/50*50, i), Mode: 0o644},
			body: randBytes(uint64(i), n)})
		total += n
	}
	for i := range 4 {
		ms = append(ms, member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("opt/big-%d.bin", i), Mode: 0o644},
			body: randBytes(uint64(1000+i), 6<<20)})
	}
	return makeTar(b, ms, false)
}

func BenchmarkSplitJoin(b *testing.B) {
	in := benchTar(b)
	var hbuf, cbuf bytes.Buffer
	st, err := Split(bytes.NewReader(in), &hbuf, &cbuf)
	if err != nil {
		b.Fatal(err)
	}
	headers, content := hbuf.Bytes(), cbuf.Bytes()
	b.Logf("tar %d bytes, %d entries, header stream %d bytes, content %d bytes", st.TarBytes, st.Files, st.HeaderBytes, st.ContentBytes)

	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("copy", func() error {
		_, err := io.Copy(sink{}, reader{bytes.NewReader(in)})
		return err
	})
	run("sha256", func() error {
		_, err := io.Copy(sha256.New(), reader{bytes.NewReader(in)})
		return err
	})
	run("split", func() error {
		_, err := Split(reader{bytes.NewReader(in)}, sink{}, sink{})
		return err
	})
	run("join", func() error {
		_, err := JoinTo(sink{}, bytes.NewReader(headers), bytes.NewReader(content))
		return err
	})
	run("join-unchecked", func() error {
		_, err := JoinToUnchecked(sink{}, bytes.NewReader(headers), bytes.NewReader(content))
		return err
	})
	run("join-pipe", func() error {
		rc := Join(bytes.NewReader(headers), bytes.NewReader(content))
		defer rc.Close()
		_, err := io.Copy(sink{}, rc)
		return err
	})
	run("verify", func() error {
		return Verify(bytes.NewReader(headers), bytes.NewReader(content), st)
	})
	// For reference: tar-split's own disassembly (JSON packer, crc64 of
	// payloads, payloads discarded).
	run("tar-split-asm", func() error {
		rc, done, err := asm.NewInputTarStreamWithDone(reader{bytes.NewReader(in)}, storage.NewJSONPacker(sink{}), nil)
		if err != nil {
			return err
		}
		if _, err := io.Copy(sink{}, rc); err != nil {
			return err
		}
		return <-done
	})
}
