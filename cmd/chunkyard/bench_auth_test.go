package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
)

// BenchmarkAuthPush measures one monolithic blob push (a 1 MiB gzipped
// layer, POST ?digest=) against a real server: without authentication,
// with basic auth (bcrypt cached after the first check) and with a bearer
// token; ns/op ratios against "none" are the cost of authentication.
func BenchmarkAuthPush(b *testing.B) {
	for _, mode := range []string{"none", "basic", "bearer"} {
		b.Run(mode, func(b *testing.B) {
			var args []string
			if mode != "none" {
				htp := filepath.Join(b.TempDir(), "htpasswd")
				writeHtpasswd(b, htp, "ci=pw")
				args = []string{"--htpasswd", htp}
			}
			s := startAuthServer(b, nil, args...)
			authz := ""
			switch mode {
			case "basic":
				authz = basicHeader("ci=pw")
			case "bearer":
				authz = "Bearer " + s.token(b, "ci=pw", "repository:bench/app:pull,push")
			}
			layers := make([][]byte, b.N)
			for i := range layers {
				layers[i] = gzLayer(b, uint64(i+1)*7919+uint64(len(mode)), 1<<20)
			}
			b.SetBytes(1 << 20)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := digestOf(layers[i])
				st, _, _ := s.reqAuth(b, "POST", "/v2/bench/app/blobs/uploads/?digest="+d, authz, layers[i])
				if st != http.StatusCreated {
					b.Fatalf("push: %d", st)
				}
			}
		})
	}
}

// BenchmarkCrossTenantDedupTiming measures the push of a layer that is new
// to the store ("new") against the push, by another tenant into another
// repository, of a layer the store already holds ("dup"): the difference
// is what a push's timing could tell about someone else's content. With
// authentication ("auth") the registry's UniformCommit is on; without
// ("open") it is off: the baseline of the same run.
func BenchmarkCrossTenantDedupTiming(b *testing.B) {
	for _, mode := range []string{"open", "auth"} {
		for _, kind := range []string{"new", "dup"} {
			b.Run(mode+"/"+kind, func(b *testing.B) {
				args := []string{"--convert-workers", "1"}
				alice, bob := "", ""
				if mode == "auth" {
					htp := filepath.Join(b.TempDir(), "htpasswd")
					writeHtpasswd(b, htp, "alice=pw", "bob=pw")
					args = append(args, "--htpasswd", htp)
					alice, bob = basicHeader("alice=pw"), basicHeader("bob=pw")
				}
				s := startAuthServer(b, nil, args...)
				layers := make([][]byte, b.N)
				for i := range layers {
					layers[i] = gzLayer(b, uint64(i+1)*104729, 1<<20)
				}
				if kind == "dup" {
					for i := range layers {
						if st, _, _ := s.reqAuth(b, "POST", "/v2/alice/app/blobs/uploads/?digest="+digestOf(layers[i]), alice, layers[i]); st != 201 {
							b.Fatalf("alice's push: %d", st)
						}
					}
				}
				b.SetBytes(1 << 20)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if st, _, _ := s.reqAuth(b, "POST", fmt.Sprintf("/v2/bob/app%d/blobs/uploads/?digest=%s", i, digestOf(layers[i])), bob, layers[i]); st != 201 {
						b.Fatalf("bob's push: %d", st)
					}
				}
			})
		}
	}
}
