package crashtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// faulter injects a disk error into the operations of a hookFS under one
// of its directories: from the at-th such operation on, every one (a
// full disk, until cleared) or only that one (an I/O error).
type faulter struct {
	gate    sync.RWMutex // held for reading by every operation; crashClone takes it
	mu      sync.Mutex
	dirs    []string // operations on paths under these are eligible
	err     error    // what to inject; nil: off
	sticky  bool     // every eligible operation after the first fails
	n, at   int
	struck  atomic.Int64 // operations failed
	struckA string       // the first one
}

func (f *faulter) enter(op, path string) (error, func()) {
	f.gate.RLock()
	return f.inject(op, path), f.gate.RUnlock
}

func (f *faulter) inject(op, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil || op == "remove" || op == "remove-all" || op == "lock" {
		return nil
	}
	eligible := false
	for _, d := range f.dirs {
		eligible = eligible || strings.HasPrefix(path, d+"/")
	}
	if !eligible {
		return nil
	}
	f.n++
	if f.n < f.at || (!f.sticky && f.n > f.at) {
		return nil
	}
	if f.struck.Add(1) == 1 {
		f.struckA = op + " " + path
	}
	return &os.PathError{Op: op, Path: path, Err: f.err}
}

// crashClones returns mem as a power loss now would leave it (what was
// fsynced) and as a kill would (everything written).
func (f *faulter) crashClones(mem *vfs.MemFS) (powerLoss, killed *vfs.MemFS) {
	f.gate.Lock()
	defer f.gate.Unlock()
	return mem.CrashClone(vfs.CrashCloneCfg{}),
		mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
}

// arm makes the at-th next eligible operation fail with errno, and every
// later one too if sticky.
func (f *faulter) arm(errno syscall.Errno, sticky bool, at int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.sticky, f.n, f.at = errno, sticky, 0, at
	f.struck.Store(0)
}

func (f *faulter) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = nil
}

// checkFaultResponse checks the answer to a request that failed under an
// injected fault: OCI error JSON, code UNKNOWN, a 5xx status that fits the
// error, and the class's message (which names the cause).
func checkFaultResponse(status int, body []byte, errno syscall.Errno) error {
	want, class := http.StatusInternalServerError, registry.ErrStorageFailure
	if errno == syscall.ENOSPC {
		want, class = http.StatusInsufficientStorage, registry.ErrInsufficientStorage
	}
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
		return fmt.Errorf("status %d, body %q: not one OCI error", status, body)
	}
	if status != want || e.Errors[0].Code != "UNKNOWN" || e.Errors[0].Message != class.Error() {
		return fmt.Errorf("status %d, %+v; want %d UNKNOWN %q", status, e.Errors[0], want, class.Error())
	}
	return nil
}

// errStatus is a push refused with an HTTP error.
type errStatus struct {
	status int
	body   []byte
}

func (e *errStatus) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

// TestDiskFaults injects a full disk (ENOSPC, until cleared) or an I/O
// error (EIO, once) at a random write, fsync, create or link of the pack
// store, the upload spool or the pending dir, during pushes (monolithic,
// two-step and chunked, through the HTTP handler) and conversions. Each
// refused request must get a clear error, never a 201; what the registry
// had must still be served during the fault; once it clears, pushes work
// again; and everything acknowledged or visible reads back verified, with
// fsck clean, both at once and after a restart (which repairs any pack
// left with a torn tail).
func TestDiskFaults(t *testing.T) {
	trials := envInt(t, "CHUNKYARD_FAULT_TRIALS", 30)
	if raceEnabled && os.Getenv("CHUNKYARD_FAULT_TRIALS") == "" {
		trials = 6
	}
	seed := envSeed(t)
	t.Logf("seed %d (replay: CHUNKYARD_CRASH_SEED=%d)", seed, seed)
	var st faultStats
	for i := range trials {
		faultTrial(t, seed+uint64(i), &st)
		if t.Failed() {
			t.Fatalf("trial seed %d failed", seed+uint64(i))
		}
	}
	t.Logf("%d trials: %d operations failed by injection; %d pushes refused with a clear error; %d torn packs repaired at restart; %d acknowledged tags and blobs verified",
		trials, st.struck, st.refused, st.repaired, st.acked)
}

type faultStats struct{ refused, acked, struck, repaired int }

func faultTrial(t *testing.T, seed uint64, st *faultStats) {
	var refused, struck int
	rng := rand.New(rand.NewPCG(seed, 1))
	wl := newWorkload(seed)
	logs := newRingLog(300)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mem := vfs.NewCrashableMem()
	var rem *remote
	if seed%2 == 1 {
		rem = newRemote()
	}
	f := &faulter{dirs: []string{storeDir, uploadDir, pendingDir}}
	m := newModel()
	clk := newClock()
	fail := func(format string, args ...any) {
		t.Errorf("trial seed %d: %s\nlast log lines:\n%s", seed, fmt.Sprintf(format, args...), logs.String())
	}
	w, err := openWorld(hookFS{mem, f}, rem, clk, log)
	if err != nil {
		fail("open: %v", err)
		return
	}
	defer func() { w.close() }()

	// What the registry has before the fault.
	for range 2 {
		if err := wl.pushImage(repos[rng.IntN(2)], fmt.Sprintf("base%d", wl.seq)).run(w, m); err != nil {
			fail("before the fault: %v", err)
			return
		}
		wl.seq++
	}
	if !w.convertAll(10 * time.Second) {
		fail("before the fault: conversions did not drain")
		return
	}
	m.mu.Lock()
	before := m.clone()
	m.mu.Unlock()

	errno := []syscall.Errno{syscall.ENOSPC, syscall.EIO}[rng.IntN(2)]
	f.arm(errno, errno == syscall.ENOSPC, 1+rng.IntN(60))
	converting := rng.IntN(2) == 0
	if converting {
		w.startService() // conversions run (and fail) during the fault
	}
	for i := range 4 {
		s := wl.pushImage(repos[rng.IntN(len(repos))], fmt.Sprintf("f%d-%d", wl.seq, i))
		err := s.run(w, m)
		var es *errStatus
		switch {
		case err == nil:
		case errors.As(err, &es):
			if cerr := checkFaultResponse(es.status, es.body, errno); cerr != nil {
				fail("push refused under %v: %v", errno, cerr)
				return
			}
			refused++
		default:
			fail("push under %v: %v", errno, err)
			return
		}
	}
	// The registry still serves what it had.
	if v := verify(w, before.clone()); len(v.losses) > 0 {
		fail("during the fault (%v at %s): %s", errno, f.struckA, first(v.losses, 10))
		return
	}
	struck = int(f.struck.Load())
	f.clear()
	w.stopService()

	// Pushes work again.
	if err := wl.pushImage("keep/a", fmt.Sprintf("after%d", wl.seq)).run(w, m); err != nil {
		fail("after the fault (%v at %s) cleared: %v", errno, f.struckA, err)
		return
	}
	if v := verify(w, m); !v.ok() {
		fail("after the fault (%v at %s), before a restart:\nlosses: %s\nproblems: %s", errno, f.struckA, first(v.losses, 10), first(v.problems, 10))
		return
	}
	// Two restarts: after a power loss now, which keeps only what was
	// fsynced (an acknowledgement that rested on a failed fsync shows),
	// and after the process was killed, which keeps everything written
	// (the torn tails the fault left in staging are then repaired).
	powerLoss, killed := f.crashClones(mem)
	var remAfter *remote
	if rem != nil {
		remAfter = rem.snapshot()
	}
	if err := w.close(); err != nil {
		log.Warn("close after the fault", "err", err)
	}
	var v *verdict
	for _, restart := range []struct {
		name string
		fs   *vfs.MemFS
	}{{"a power loss", powerLoss}, {"a kill", killed}} {
		if w, err = openWorld(hookFS{restart.fs, f}, remAfter.snapshotOrNil(), clk, log); err != nil {
			fail("reopen after the fault and %s: %v", restart.name, err)
			return
		}
		mr := m.clone()
		v = verify(w, mr)
		if !v.ok() {
			fail("after the fault (%v at %s) and %s:\nlosses: %s\nproblems: %s", errno, f.struckA, restart.name, first(v.losses, 10), first(v.problems, 10))
			return
		}
		w.close()
	}
	st.refused += refused
	st.acked += v.ackedChecked
	st.struck += struck
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "recovery: sealing staging pack") && !strings.Contains(l, "dropped_bytes=0") {
			st.repaired++
		}
	}
}

// TestIndexFaultIsFailStop injects a full disk under the index during a
// push. Pebble cannot go on after a failed write of its log: the index
// fails (refgraph.ErrIndexFailed), the push gets a clear 500 and so does
// every later write, reads go on, and a restart once the disk has room
// finds everything acknowledged, fsck clean, and takes pushes again.
func TestIndexFaultIsFailStop(t *testing.T) {
	for i := range 6 {
		seed := uint64(1000 + i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { indexFaultTrial(t, seed) })
	}
}

// indexFaultWorld opens a world on an in-memory FS whose faults strike
// only under the index.
func indexFaultWorld(t *testing.T, seed uint64) (wl *workload, log *slog.Logger, mem *vfs.MemFS, f *faulter, m *model, clk *clock, w *world) {
	t.Helper()
	wl, log, mem = newWorkload(seed), slog.New(slog.DiscardHandler), vfs.NewCrashableMem()
	f, m, clk = &faulter{dirs: []string{indexDir}}, newModel(), newClock()
	w, err := openWorld(hookFS{mem, f}, nil, clk, log)
	if err != nil {
		t.Fatal(err)
	}
	return wl, log, mem, f, m, clk, w
}

func indexFaultTrial(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	wl, log, mem, f, m, clk, w := indexFaultWorld(t, seed)
	var err error
	defer func() { w.close() }()
	if err := wl.pushImage("keep/a", "base").run(w, m); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	before := m.clone()
	m.mu.Unlock()

	f.arm(syscall.ENOSPC, true, 1+rng.IntN(8))
	defer f.clear() // before the deferred close
	refused := 0
	for i := 0; refused < 3; i++ {
		if i > 10 {
			t.Fatalf("the fault never struck (%d eligible operations)", f.n)
		}
		struck := f.struck.Load() > 0
		err := wl.pushImage("keep/b", fmt.Sprintf("f%d", i)).run(w, m)
		var es *errStatus
		switch {
		case err == nil && struck:
			t.Fatalf("push %d acknowledged after the index's disk filled up", i)
		case err == nil:
			continue // done before the fault struck
		case !errors.As(err, &es):
			t.Fatalf("push %d: %v", i, err)
		}
		// Refused by the failed index: 500, storage failure.
		if cerr := checkFaultResponse(es.status, es.body, syscall.EIO); cerr != nil {
			t.Fatalf("push %d: %v", i, cerr)
		}
		refused++
	}
	select {
	case <-w.graph.Failed():
	default:
		t.Fatal("the index has not failed")
	}
	if !errors.Is(w.graph.Err(), refgraph.ErrIndexFailed) {
		t.Fatalf("graph.Err() = %v", w.graph.Err())
	}
	if v := verify(w, before.clone()); len(v.losses) > 0 {
		t.Fatalf("reads while the index has failed: %s", first(v.losses, 10))
	}
	f.clear()
	powerLoss, killed := f.crashClones(mem)
	if err := w.close(); !errors.Is(err, refgraph.ErrIndexFailed) {
		t.Errorf("close of the failed world: %v", err)
	}
	for _, fs := range []*vfs.MemFS{powerLoss, killed} {
		if w, err = openWorld(hookFS{fs, f}, nil, clk, log); err != nil {
			t.Fatal(err)
		}
		mr := m.clone()
		if v := verify(w, mr); !v.ok() {
			t.Fatalf("after a restart:\nlosses: %s\nproblems: %s", first(v.losses, 10), first(v.problems, 10))
		}
		if err := wl.pushImage("keep/a", "after").run(w, mr); err != nil {
			t.Fatalf("push after a restart: %v", err)
		}
		w.close()
	}
	t.Logf("ENOSPC at operation %d under the index: %d pushes refused with 500, restart clean", f.at, refused)
}

// TestIndexFaultStopsBackgroundWork: the index fails under the converter
// (its disk fills while a layer is converted). The converter's goroutine
// must not take the process down with the index's panic: the failure is
// reported through Graph.Failed (a server stops on it), what was
// acknowledged still reads back, and a restart finds it all.
func TestIndexFaultStopsBackgroundWork(t *testing.T) {
	for i := range 12 { // the conversions make 14-16 eligible operations
		seed := uint64(1100 + i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			wl, log, mem, f, m, clk, w := indexFaultWorld(t, seed)
			var err error
			defer func() { w.close() }()
			for _, tag := range []string{"a", "b", "c"} {
				if err := wl.pushImage("keep/a", tag).run(w, m); err != nil {
					t.Fatal(err)
				}
			}
			if w.graph.Stats().PendingConversions == 0 {
				t.Fatal("nothing waits for conversion")
			}
			f.arm(syscall.ENOSPC, true, 1+i)
			defer f.clear()
			w.startService()
			select {
			case <-w.graph.Failed():
			case <-time.After(30 * time.Second):
				t.Fatalf("the index never failed under the converter (%d eligible operations)", f.n)
			}
			time.Sleep(50 * time.Millisecond) // the converter meets the failure again
			w.stopService()
			m.mu.Lock()
			acked := m.clone()
			m.mu.Unlock()
			if v := verify(w, acked.clone()); len(v.losses) > 0 {
				t.Fatalf("reads while the index has failed: %s", first(v.losses, 10))
			}
			f.clear()
			w.close()
			if w, err = openWorld(hookFS{mem, f}, nil, clk, log); err != nil {
				t.Fatal(err)
			}
			if v := verify(w, acked); !v.ok() {
				t.Fatalf("after a restart:\nlosses: %s\nproblems: %s", first(v.losses, 10), first(v.problems, 10))
			}
		})
	}
}
