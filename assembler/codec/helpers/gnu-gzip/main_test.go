package main

import (
	"strings"
	"testing"
)

// TestVersion: on a machine with GNU gzip (CI has Debian's) the helper
// names its release; package codec's tests check that the helper
// reproduces gzip's output byte for byte.
func TestVersion(t *testing.T) {
	if _, err := gzipPath(); err != nil {
		t.Skip("no gzip binary")
	}
	v, err := gzipVersion()
	if err != nil || !strings.HasPrefix(v, "gnu-gzip 1.") {
		t.Fatalf("version %q: %v", v, err)
	}
	t.Log(v)
}

func TestGzipEnvDropsGZIP(t *testing.T) {
	t.Setenv("GZIP", "-1")
	for _, e := range gzipEnv() {
		if strings.HasPrefix(e, "GZIP=") {
			t.Fatal("GZIP passed on")
		}
	}
}
