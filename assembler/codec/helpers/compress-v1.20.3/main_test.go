package main

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "print the golden hashes instead of checking them")

// input is a fixed, text-like stream: words from a small vocabulary with
// runs of random bytes, so that every encoder has matches to find and
// literals to code.
func input() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"usr", "lib", "share", "doc", "x86_64-linux-gnu", "libc.so.6", "python3", "node_modules", "\n", "/", " ", "README.md", "0644", "00000000"}
	var b bytes.Buffer
	for b.Len() < 3<<20 {
		if r.IntN(50) == 0 {
			for range r.IntN(4096) {
				b.WriteByte(byte(r.Uint32()))
			}
			continue
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()
}

// golden: sha256 of each encoder's output for input(), as klauspost
// compress v1.20.3 and pgzip v1.2.6 write it. A change means the helper
// no longer writes its class: recipes found with it would fail to verify.
var golden = map[string]string{
	"klauspost-gzip/1":   "69507ba2b1d56dd07608466496e659f6f0a5b491a70f169c3b5715e3a65e5380",
	"klauspost-gzip/5":   "4ef6b4b2c076282f0a59f72c720285e082a341b960e3e833bfbcb05623ec284c",
	"klauspost-gzip/6":   "9133d37aee0c539f9d624e91067f38e731bc0bc744372ffc21895a6626e8a486",
	"klauspost-gzip/9":   "badb7f94b5465622b68ec4766b15696efcc48e4c9469d4cc21ad1ff51db9e21c",
	"klauspost-pgzip/5":  "aa3aeb23186882c0d02d4fcdd4f6069a698743afef96a4d2b06e7fbe27a1b919",
	"klauspost-pgzip/6":  "d38bbcf9b6c15ba17856a4b4fc62a2a54eb38d125372d14f92d9b41a28684f67",
	"klauspost-zstd/1":   "20a55e36a1e54d05bbf6fdfda29c6f5373a76ed4dd3b83843b8a998679d4efc8",
	"klauspost-zstd/2":   "0c322598d876af879c059248a23d2870990c72c820363e977378e3e9914eaf8f",
	"klauspost-zstd/2/c": "47ccef6da11b7f60289e09192d7a7f19c7aab27eee80331e73038442072ffd80",
	"klauspost-zstd/3":   "afd8fada246ca1660d8706dd759ad65a2eaff86e7ba8aac8641ab39f71a0ff2b",
	"klauspost-zstd/4":   "b7b27b157576d46f16261e6cd34d154ef1c449afd5b620137bbb94f7716599d1",
}

func paramsFor(name string) params {
	f := strings.Split(name, "/") // encoder/level[/c: content size declared]
	level, _ := strconv.Atoi(f[1])
	p := params{Encoder: f[0], Level: level}
	p.Concurrency = 2
	switch p.Encoder {
	case encPgzip:
		p.BlockSize = 1 << 20
	case encKlauspostZstd:
		p.Checksum = true
	}
	return p
}

func TestGolden(t *testing.T) {
	in := input()
	for name, want := range golden {
		p := paramsFor(name)
		if name == "klauspost-zstd/2/c" {
			p.ContentSize = int64(len(in))
		}
		var out bytes.Buffer
		if err := encode(&out, bytes.NewReader(in), p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum := sha256.Sum256(out.Bytes())
		got := hex.EncodeToString(sum[:])
		if *update {
			fmt.Printf("\t%q: %q,\n", name, got)
			continue
		}
		if got != want {
			t.Errorf("%s: sha256 %s, golden %s", name, got, want)
		}
		if err := decodes(p.Encoder, out.Bytes(), in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// decodes checks that out decompresses to in with the standard decoders.
func decodes(encoder string, out, in []byte) error {
	var r io.Reader
	switch encoder {
	case encKlauspostGzip:
		r = flate.NewReader(bytes.NewReader(out))
	case encPgzip:
		gz, err := gzip.NewReader(bytes.NewReader(out))
		if err != nil {
			return err
		}
		r = gz
	default:
		d, err := zstd.NewReader(bytes.NewReader(out))
		if err != nil {
			return err
		}
		defer d.Close()
		r = d
	}
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, in) {
		return fmt.Errorf("round trip differs")
	}
	return nil
}

// TestConcurrencyIndependent: the blocks or goroutines in flight do not
// shape the output, so the caller may choose them.
func TestConcurrencyIndependent(t *testing.T) {
	in := input()
	for _, p := range []params{
		{Encoder: encPgzip, Level: 5, BlockSize: 1 << 20},
		{Encoder: encKlauspostZstd, Level: 2, Checksum: true},
	} {
		var outs [][]byte
		for _, n := range []int{1, 2, 4} {
			p.Concurrency = n
			var out bytes.Buffer
			if err := encode(&out, bytes.NewReader(in), p); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out.Bytes())
		}
		for i := range outs[1:] {
			if !bytes.Equal(outs[0], outs[i+1]) {
				t.Errorf("%s: output depends on concurrency", p.Encoder)
			}
		}
	}
}
