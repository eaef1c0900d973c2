package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGate: /readyz is 503 until the API opens; API requests made before
// wait and are then served; /healthz answers throughout.
func TestGate(t *testing.T) {
	g := newGate()
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	if w := get("/readyz"); w.Code != 503 {
		t.Fatalf("readyz before: %d", w.Code)
	}
	if w := get("/healthz"); w.Code != 200 {
		t.Fatalf("healthz before: %d", w.Code)
	}
	early := make(chan int, 1)
	go func() { early <- get("/v2/").Code }()
	select {
	case c := <-early:
		t.Fatalf("served before ready: %d", c)
	case <-time.After(100 * time.Millisecond):
	}
	g.open(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if c := <-early; c != http.StatusTeapot {
		t.Fatalf("early request: %d", c)
	}
	if w := get("/readyz"); w.Code != 200 {
		t.Fatalf("readyz after: %d", w.Code)
	}
	// A client that gives up while waiting is let go.
	g2 := newGate()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	g2.ServeHTTP(w, httptest.NewRequest("GET", "/v2/", nil).WithContext(ctx))
}

// TestUploadLimiter: past the concurrent-upload cap and past the spooled
// bytes cap, uploads get 429 TOOMANYREQUESTS; other requests pass.
func TestUploadLimiter(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Block") != "" {
			<-release
		}
		w.WriteHeader(http.StatusAccepted)
	})
	l := newUploadLimiter(1, 1000, dir)
	h := l.wrap(inner)
	do := func(method, path string, body string, block bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if block {
			r.Header.Set("X-Block", "1")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	done := make(chan struct{})
	go func() { do("PATCH", "/v2/a/blobs/uploads/x", "abc", true); close(done) }()
	time.Sleep(50 * time.Millisecond)
	w := do("PATCH", "/v2/a/blobs/uploads/y", "abc", false)
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "TOOMANYREQUESTS") {
		t.Fatalf("second concurrent upload: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/v2/a/blobs/sha256:x", "", false); w.Code != http.StatusAccepted {
		t.Fatalf("a pull was limited: %d", w.Code)
	}
	close(release)
	<-done
	// Spooled bytes: a session file of 900 bytes; 200 more is over 1000.
	os.WriteFile(filepath.Join(dir, "session"), bytes.Repeat([]byte{1}, 900), 0o600)
	l.measure()
	if w := do("PATCH", "/v2/a/blobs/uploads/z", strings.Repeat("x", 200), false); w.Code != http.StatusTooManyRequests {
		t.Fatalf("over the spool cap: %d", w.Code)
	}
	if w := do("PATCH", "/v2/a/blobs/uploads/z", strings.Repeat("x", 50), false); w.Code != http.StatusAccepted {
		t.Fatalf("under the spool cap: %d", w.Code)
	}
}
