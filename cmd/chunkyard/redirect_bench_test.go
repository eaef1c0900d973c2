package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// BenchmarkBlobRedirect GETs a 64 MiB layer, following redirects and
// checking its digest, from two chunkyards on the same versitygw: one that
// serves it directly (from its encoded-layer cache, --redirect-min-size
// above the layer) and one that redirects it to a presigned URL.
//
//	go test ./cmd/chunkyard -run '^$' -bench BlobRedirect -benchtime 5x
func BenchmarkBlobRedirect(b *testing.B) {
	s := s3test.Start(b)
	img, _, _ := redirectImage(b, 64<<20)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	for _, c := range []struct {
		name  string
		extra []string
	}{
		{"direct", []string{"--redirect-min-size", "1073741824"}},
		{"redirect", nil},
	} {
		n := startRedirectNodeTB(b, s, c.extra...)
		ref, _ := name.ParseReference(n.addr+"/app/bench:v1", name.Insecure)
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "ci-pass"})); err != nil {
			b.Fatal(err)
		}
		u := "http://" + n.addr + "/v2/app/bench/blobs/" + d.String()
		get := func() int {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.SetBasicAuth("ci", "ci-pass")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil || resp.StatusCode != http.StatusOK || hex.EncodeToString(h.Sum(nil)) != d.Hex {
				b.Fatalf("GET: HTTP %d, %v, digest mismatch", resp.StatusCode, err)
			}
			if len(resp.Request.URL.RawQuery) > 0 { // followed to a presigned URL
				return 1
			}
			return 0
		}
		get() // encodes into the layer cache (and starts the upload)
		if c.name == "redirect" {
			deadline := time.Now().Add(60 * time.Second)
			for get() == 0 {
				if time.Now().After(deadline) {
					b.Fatal("never redirected")
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			redirected := 0
			for b.Loop() {
				redirected += get()
			}
			b.ReportMetric(float64(redirected)/float64(b.N), "redirected/op")
		})
	}
}
