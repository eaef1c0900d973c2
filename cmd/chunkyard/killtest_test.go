package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// killGCConfig makes GC run all the time: every 100 ms, retention keeping
// 3 tags per repository and deleting untagged manifests at once, short
// grace periods, and packs rewritten below 95% live.
const killGCConfig = `
interval = "100ms"
grace_period = "2s"
pack_grace_period = "500ms"
repack_below = 0.95
small_pack = 262144
[[policy]]
repos = "kill/.*"
keep_last = 3
delete_untagged_older_than = "1ns"
`

// TestKillDuringPushAndGC: the real binary serves with GC running all the
// time while pushes go on; it is SIGKILLed at a random moment, restarted
// on the same data dir, and checked: the last two acknowledged tags of
// every repository (keep_last is 3 and one more push may have landed
// unacknowledged) are there, every tag pulls byte for byte, and, after a
// clean stop, `chunkyard fsck` finds nothing. CHUNKYARD_KILLTEST sets the
// number of kills (scripts/test: 50); CHUNKYARD_BIN the binary (default:
// built here).
func TestKillDuringPushAndGC(t *testing.T) {
	kills := 3
	if v := os.Getenv("CHUNKYARD_KILLTEST"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CHUNKYARD_KILLTEST: %v", err)
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
	cfgPath := filepath.Join(dir, "gc.toml")
	if err := os.WriteFile(cfgPath, []byte(killGCConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	const repos = 3
	acked := make([][]string, repos) // per repo, acknowledged tags in push order
	var stats struct{ pushes, pulls, kills, gcRuns, repackRuns int }
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := 0; k < kills; k++ {
		srv := startServer(t, bin, data, cfgPath, fmt.Sprintf("kill%d", k))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var mu sync.Mutex
		for r := range repos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					tag := fmt.Sprintf("k%d-%d", k, n)
					img := killImage(t, uint64(k*1000+n*10+r))
					if err := remote.Write(srv.ref(t, fmt.Sprintf("kill/r%d:%s", r, tag)), img, remote.WithContext(ctx)); err != nil {
						return // the kill, or a push cut short: not acknowledged
					}
					mu.Lock()
					acked[r] = append(acked[r], tag)
					stats.pushes++
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rnd.IntN(2500)) * time.Millisecond)
		srv.kill(t)
		cancel()
		wg.Wait()
		stats.kills++
		stats.gcRuns += strings.Count(srv.log.String(), `msg="gc run"`)
		stats.repackRuns += len(repackedRe.FindAllString(srv.log.String(), -1))

		// Restart and verify.
		srv = startServer(t, bin, data, cfgPath, fmt.Sprintf("verify%d", k))
		for r := range repos {
			repo := fmt.Sprintf("kill/r%d", r)
			tags, err := remote.List(srv.ref(t, repo).Context())
			if err != nil {
				var te *transport.Error
				if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound || len(acked[r]) > 0 {
					t.Fatalf("after kill %d: listing %s: %v", k, repo, err)
				}
			}
			have := map[string]bool{}
			for _, tag := range tags {
				have[tag] = true
				if err := registrytest.PullVerify(srv.ref(t, repo+":"+tag)); err != nil {
					// Retention (running here too) may have deleted it
					// since the listing; anything else is a loss.
					if now, lerr := remote.List(srv.ref(t, repo).Context()); lerr != nil || slices.Contains(now, tag) {
						t.Fatalf("after kill %d: pull %s:%s: %v", k, repo, tag, err)
					}
					continue
				}
				stats.pulls++
			}
			for i := max(0, len(acked[r])-2); i < len(acked[r]); i++ {
				if !have[acked[r][i]] {
					t.Fatalf("after kill %d: acknowledged %s:%s is gone (tags %v)", k, repo, acked[r][i], tags)
				}
			}
		}
		srv.stop(t)
		out, err := exec.Command(bin, "fsck", "--data", data).CombinedOutput()
		if err != nil {
			t.Fatalf("after kill %d: fsck: %v\n%s\nserver log:\n%s", k, err, out, srv.log.String())
		}
	}
	t.Logf("%d kills, %d acknowledged pushes, %d verified pulls, 0 losses; %d GC runs completed between kills, %d of them repacked",
		stats.kills, stats.pushes, stats.pulls, stats.gcRuns, stats.repackRuns)
	out, _ := exec.Command(bin, "stats", "--data", data).CombinedOutput()
	t.Logf("stats:\n%s", out)
}

var repackedRe = regexp.MustCompile(`msg="gc run".* packs_repacked=[1-9]`)

// killImage is a small image: a gzip layer of files shared by every image
// (with a new mtime, as a rebuild), and one of its own.
func killImage(t *testing.T, seed uint64) v1.Image {
	t.Helper()
	layer := func(shared bool) v1.Layer {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		r := rand.New(rand.NewPCG(seed, 3))
		if shared {
			r = rand.New(rand.NewPCG(1, 3))
		}
		for i := range 8 {
			data := make([]byte, 16<<10+r.IntN(64<<10))
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d-%v", i, shared), Mode: 0o644, Size: int64(len(data)),
				ModTime: time.Unix(int64(1_700_000_000+seed), 0), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		tw.Close()
		zw.Close()
		return static.NewLayer(buf.Bytes(), types.OCILayer)
	}
	img, err := mutate.AppendLayers(empty.Image, layer(true), layer(false))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type server struct {
	cmd  *exec.Cmd
	addr string
	log  *logBuffer
	done chan error
}

func startServer(t *testing.T, bin, data, cfg, name string, extra ...string) *server {
	t.Helper()
	s := &server{addr: freeAddr(t), log: &logBuffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--addr", s.addr, "--data", data, "--gc-config", cfg,
		"--pack-size", "1048576", "--log-level", "info", "--codec-helpers", t.TempDir()}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + s.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("%s: server exited: %v\n%s", name, err, s.log.String())
		default:
		}
		if i == 600 {
			t.Fatalf("%s: server did not start: %v\n%s", name, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) ref(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *server) kill(t testing.TB) {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) stop(t *testing.T) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, s.log.String())
		}
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("server did not stop on SIGTERM\n%s", s.log.String())
	}
}
