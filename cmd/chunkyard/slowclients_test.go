package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// TestSlowClientsDoNotStarveColdPulls, from outside: the real binary,
// layers converted then made cold (empty layer cache after a restart),
// CHUNKYARD_SLOW_CLIENTS clients (default 40; scripts/test: 200) reading
// cold layers at 10 KB/s, then a fast client's cold pull of another
// layer. Every slow client must get its response started and the fast
// pull must complete (byte for byte); it logs the fast pull's time next
// to the same pull with no slow clients, and the server's peak RSS.
func TestSlowClientsDoNotStarveColdPulls(t *testing.T) {
	clients := 40
	if v := os.Getenv("CHUNKYARD_SLOW_CLIENTS"); v != "" {
		var err error
		if clients, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CHUNKYARD_SLOW_CLIENTS: %v", err)
		}
	}
	bin := os.Getenv("CHUNKYARD_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "chunkyard")
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "gc.toml")
	os.WriteFile(cfg, []byte("interval = \"0s\"\n"), 0o644)

	const layers = 7 // 0: baseline, 1..5: the slow clients', 6: the fast client's
	srv := startServer(t, bin, data, cfg, "push")
	var blobs []digest.Digest
	var sums [][32]byte
	for i := range layers {
		blob := slowLayer(uint64(i))
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(blob, types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(srv.ref(t, fmt.Sprintf("slow/img%d:v1", i)), img); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, digest.FromBytes(blob))
		sums = append(sums, sha256.Sum256(blob))
	}
	deadline := time.Now().Add(5 * time.Minute)
	for strings.Count(srv.log.String(), `msg="converted layer"`) < layers {
		if time.Now().After(deadline) {
			t.Fatalf("layers not converted in 5 minutes:\n%s", srv.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	srv.stop(t)
	if err := os.RemoveAll(filepath.Join(data, "layer-cache")); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, bin, data, cfg, "serve")
	defer srv.stop(t)
	pid := srv.cmd.Process.Pid

	fastPull := func(i int) time.Duration {
		start := time.Now()
		res, err := http.Get(fmt.Sprintf("http://%s/v2/slow/img%d/blobs/%s", srv.addr, i, blobs[i]))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, res.Body); err != nil || res.StatusCode != 200 || !bytes.Equal(h.Sum(nil), sums[i][:]) {
			t.Fatalf("pull of layer %d: status %d, %v, bytes right: %v", i, res.StatusCode, err, bytes.Equal(h.Sum(nil), sums[i][:]))
		}
		return time.Since(start)
	}
	alone := fastPull(0)
	resetPeak(pid)

	var started atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 1 + c%5
			conn, err := net.Dial("tcp", srv.addr)
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /v2/slow/img%d/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", i, blobs[i])
			br := bufio.NewReaderSize(conn, 1024)
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, " 200 ") {
				return
			}
			started.Add(1)
			buf := make([]byte, 1024)
			tick := time.NewTicker(100 * time.Millisecond) // 10 KB/s
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
				}
			}
		}()
	}
	deadline = time.Now().Add(2 * time.Minute)
	for started.Load() < int64(clients) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	withSlow := fastPull(layers - 1)
	rss := peakMiB(pid)
	close(stop)
	wg.Wait()
	if n := started.Load(); n != int64(clients) {
		t.Errorf("%d of %d slow clients got their response started within 2 minutes", n, clients)
	}
	t.Logf("cold pull of a %.1f MB layer: %v alone, %v with %d clients reading cold layers at 10 KB/s (%.2fx); all %d slow clients started; server peak RSS %d MiB",
		float64(len(slowLayer(0)))/1e6, alone.Round(time.Millisecond), withSlow.Round(time.Millisecond), clients,
		float64(withSlow)/float64(alone), started.Load(), rss)
}

// slowLayer is a gzip-6 layer of about 12 MB of tar, half compressible.
func slowLayer(seed uint64) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 6)
	tw := tar.NewWriter(zw)
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range 24 {
		data := make([]byte, 512<<10)
		for j := range data {
			if j%2 == 0 {
				data[j] = byte(r.Uint32())
			} else {
				data[j] = "abcdefgh"[r.IntN(8)]
			}
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%02d", i), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// resetPeak resets a process's peak RSS (VmHWM), Linux only.
func resetPeak(pid int) { os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) }

// peakMiB returns a process's peak RSS since the last reset, 0 if unknown.
func peakMiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return 0
}
