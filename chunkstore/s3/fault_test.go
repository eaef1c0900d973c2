package s3

import (
	"bytes"
	"context"
	"errors"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
	"net"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// faultOptions fail fast: two attempts of at most timeout each.
func faultOptions(t testing.TB, srv *s3test.Server, timeout time.Duration) Options {
	opts := testOptions(t, srv, "fault")
	opts.MaxAttempts = 2
	opts.RequestTimeout = timeout
	return opts
}

func TestServerDown(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	b := newBackend(t, faultOptions(t, srv, 2*time.Second))
	data := backendtest.RandomBytes(5, 100<<10)

	srv.Stop()
	err := within(t, 10*time.Second, "Put to a stopped server", func() error {
		return b.Put(ctx, "down", bytes.NewReader(data), int64(len(data)))
	})
	if err == nil {
		t.Fatal("Put to a stopped server succeeded")
	}
	t.Logf("Put to a stopped server: %v", err)
	if _, err := readAll(ctx, b, "down", 0, 1); err == nil || errors.Is(err, chunkstore.ErrNotExist) {
		t.Errorf("ReadRange from a stopped server: %v, want an error other than ErrNotExist", err)
	}
	// Both failures are counted, once each (after their retries).
	if errs := b.RequestErrors(); errs["PutObject"] != 1 || errs["GetObject"] != 1 {
		t.Errorf("request errors = %v, want PutObject 1, GetObject 1", errs)
	}

	srv.Restart()
	if exists(t, b, "down") {
		t.Fatal("failed Put left an object")
	}
	put(t, b, "down", data)
	if got, err := readAll(ctx, b, "down", 0, int64(len(data))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadRange after restart: %v", err)
	}
	// Answers (the HeadObject of exists found nothing) are no errors.
	if errs := b.RequestErrors(); len(errs) != 2 || errs["PutObject"] != 1 || errs["GetObject"] != 1 {
		t.Errorf("request errors after restart = %v, want PutObject 1, GetObject 1", errs)
	}
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func TestSlowResponses(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	proxy := startProxy(t, srv.Endpoint[len("http://"):])
	opts := faultOptions(t, srv, 500*time.Millisecond)
	opts.Endpoint = proxy.URL()
	b := newBackend(t, opts)
	data := backendtest.RandomBytes(6, 64<<10)
	put(t, b, "slow", data)
	read := func() error {
		got, err := readAll(ctx, b, "slow", 100, 1000)
		if err == nil && !bytes.Equal(got, data[100:1100]) {
			err = errors.New("wrong bytes")
		}
		return err
	}

	proxy.setDelay(3 * time.Second)
	err := within(t, 8*time.Second, "slow Put", func() error {
		return b.Put(ctx, "slow", bytes.NewReader(data), int64(len(data)))
	})
	if !isTimeout(err) {
		t.Errorf("slow Put: %v, want a timeout", err)
	}
	t.Logf("slow Put: %v", err)
	err = within(t, 8*time.Second, "slow ReadRange", read)
	if !isTimeout(err) {
		t.Errorf("slow ReadRange: %v, want a timeout", err)
	}
	// The caller's deadline cuts a request shorter than RequestTimeout.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = within(t, 2*time.Second, "Stat with a short deadline", func() error {
		_, err := b.Stat(cctx, "slow")
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat with a short deadline: %v, want context.DeadlineExceeded", err)
	}

	proxy.setDelay(0)
	if err := b.Put(ctx, "slow", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Errorf("Put without delay: %v", err)
	}
	if err := read(); err != nil {
		t.Errorf("ReadRange without delay: %v", err)
	}
}

// TestStoreBackendDown: a Store keeps working on local staging while S3 is
// down and hands the packs over once it is back, at Close or at the next
// Open.
func TestStoreBackendDown(t *testing.T) {
	srv := s3test.Start(t)
	b := newBackend(t, faultOptions(t, srv, 2*time.Second))
	dir := t.TempDir()
	opts := storeOptions(t, dir, b)

	// Down at seal time, back before Close.
	s := openStore(t, opts)
	srv.Stop()
	first := backendtest.RandomBytes(10, 700<<10) // a few packs of 256 KiB
	firstChunks := write(t, s, first)
	checkChunks(t, s, firstChunks, first)
	srv.Restart()
	if err := s.Close(); err != nil {
		t.Fatalf("Close with the server back: %v", err)
	}
	checkHandedOver(t, b, dir, firstChunks)

	// Down until after Close: the next Open hands the packs over.
	s = openStore(t, opts)
	srv.Stop()
	second := backendtest.RandomBytes(11, 700<<10)
	secondChunks := write(t, s, second)
	checkChunks(t, s, secondChunks, second)
	if err := s.Close(); err == nil {
		t.Fatal("Close with the server down succeeded")
	}
	srv.Restart()
	s = openStore(t, opts)
	defer s.Close()
	checkHandedOver(t, b, dir, secondChunks)
	checkChunks(t, s, firstChunks, first)
	checkChunks(t, s, secondChunks, second)
}
