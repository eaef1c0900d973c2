package ocihttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// endless is a registry whose blob never ends and whose uploads read
// their body to the end; it reports when the handlers gave up.
type endless struct {
	Registry
	closed   chan struct{} // the blob reader was closed
	readErrs chan error    // what reading an upload body ended with
}

func (e *endless) StatBlob(context.Context, string, digest.Digest) (int64, error) {
	return 1 << 40, nil
}

func (e *endless) OpenBlob(context.Context, string, digest.Digest, int64, int64) (io.ReadCloser, int64, error) {
	return &zeros{closed: e.closed}, 1 << 40, nil
}

type zeros struct{ closed chan struct{} }

func (z *zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
func (z *zeros) Close() error               { close(z.closed); return nil }

func (e *endless) AppendUpload(_ context.Context, _, _ string, _ int64, r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	e.readErrs <- err
	return n, err
}

// A client that stops reading a response, or stops sending a request
// body, is cut off after the I/O timeout, not served forever.
func TestIOTimeoutCutsOffStalledClients(t *testing.T) {
	reg := &endless{closed: make(chan struct{}), readErrs: make(chan error, 1)}
	srv := httptest.NewServer(NewHandler(reg, Options{IOTimeout: 200 * time.Millisecond}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// A pull whose client reads nothing.
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v2/a/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", digest.FromString("x"))
	select {
	case <-reg.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("a response nobody reads was still being written after 20 s")
	}

	// A push whose client sends 10 of 1000 bytes and stalls.
	c2, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "PATCH /v2/a/blobs/uploads/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789", strings.Repeat("a", 32))
	select {
	case err := <-reg.readErrs:
		if err == nil {
			t.Fatal("a stalled upload body read to the end")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled upload body was still being read after 20 s")
	}
}

// Deadlines set for one request do not break the next one on the same
// kept-alive connection, even after an idle pause longer than the timeout.
func TestIOTimeoutKeepAlive(t *testing.T) {
	srv := httptest.NewServer(NewHandler(&endless{}, Options{IOTimeout: 100 * time.Millisecond}))
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
