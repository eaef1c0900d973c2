package crashtest

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// pointsPerChain is how many crash points one chain of crashes runs on one
// store before starting from an empty one.
const pointsPerChain = 10

// TestPowerLoss drives pushes (monolithic, two-step and chunked uploads
// through the HTTP handler), background conversion of layers, GC runs
// (retention, reclaim with a zero grace, repack, pack deletion) and pack
// uploads to a remote store, and cuts the power at random file operations.
// After each cut it reopens everything on what the disk kept and checks
// that every acknowledged push is there and byte-exact, that everything
// the index shows reads back verified, and that fsck is clean; then it goes
// on from there, so later cuts also strike stores that went through
// earlier ones (and some strike the recovery itself).
func TestPowerLoss(t *testing.T) {
	points := envInt(t, "CHUNKYARD_CRASH_POINTS", 40)
	if raceEnabled && os.Getenv("CHUNKYARD_CRASH_POINTS") == "" {
		points = 12
	}
	seed := envSeed(t)
	t.Logf("seed %d (replay: CHUNKYARD_CRASH_SEED=%d), %d crash points", seed, seed, points)
	st := newStats()
	start := time.Now()
	lastReport := time.Now()
	for chain := 0; st.points < points; chain++ {
		n := min(pointsPerChain, points-st.points)
		if !runChain(t, seed+uint64(chain), n, st) {
			break
		}
		if time.Since(lastReport) > 15*time.Second {
			lastReport = time.Now()
			t.Logf("progress: %d/%d crash points, %d acknowledged items checked, %d losses, %.0f ms per point",
				st.points, points, st.acked, st.losses, float64(time.Since(start).Milliseconds())/float64(max(st.points, 1)))
		}
	}
	st.report(t, time.Since(start))
}

func newStats() *crashStats {
	return &crashStats{byStep: map[string]int{}, byPhase: map[string]int{}}
}

// crashStats counts what the crash points struck and what was checked.
type crashStats struct {
	points   int
	byStep   map[string]int // workload step running at the cut
	byPhase  map[string]int // pack upload, repack, pack deletion
	recovery int            // the cut struck a recovery
	remote   int            // points on the remote-backend store
	acked    int            // acknowledged tags and blobs checked after cuts
	visible  int            // blobs read because the index showed them
	losses   int
}

func (st *crashStats) report(t *testing.T, d time.Duration) {
	t.Logf("crash points: %d in %v, %.0f ms per point; by step: %s; within them: %s; on the remote-backend store: %d",
		st.points, d.Round(time.Millisecond), float64(d.Milliseconds())/float64(max(st.points, 1)),
		counts(st.byStep), counts(st.byPhase), st.remote)
	t.Logf("checked after the cuts: %d acknowledged tags and blobs, %d more blobs the index showed; losses: %d",
		st.acked, st.visible, st.losses)
}

// runChain runs points crash points on one store, all drawn from seed. It
// reports false if the chain failed.
func runChain(t *testing.T, seed uint64, points int, st *crashStats) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	wl := newWorkload(seed)
	logs := newRingLog(400)
	var logw io.Writer = logs
	if path := os.Getenv("CHUNKYARD_CRASH_LOG"); path != "" { // every line, for debugging
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		logw = io.MultiWriter(logs, f)
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mem := vfs.NewCrashableMem()
	var rem *remote
	if seed%2 == 1 {
		rem = newRemote()
	}
	m := newModel()
	clk := newClock()
	fail := func(point int, format string, args ...any) bool {
		t.Errorf("chain seed %d, crash point %d: %s\nreplay: CHUNKYARD_CRASH_SEED=%d CHUNKYARD_CRASH_POINTS=%d go test -run 'TestPowerLoss$' ./crashtest/\nlast log lines:\n%s",
			seed, point+1, fmt.Sprintf(format, args...), seed, point+1, logs.String())
		return false
	}
	opsPerStep := 150.0 // learnt as the chain runs
	steps, stepOps := 0, int64(0)

	c := newCrasher(mem, m, rem, rng)
	w, err := openWorld(hookFS{mem, c}, rem, clk, log)
	if err != nil {
		return fail(0, "open: %v", err)
	}
	for point := 0; point < points; point++ {
		// Cut the power within the next few steps' worth of operations,
		// keeping 0 to 100% of what was not synced; or, a third of the
		// time, at one of the next operations of a pack upload, a repack
		// or a pack deletion, which are few among the others.
		unsynced := []int{0, 0, 10, 50, 90}[rng.IntN(5)]
		if rng.IntN(3) == 0 {
			c.armPhase([]string{"pack upload", "repack", "pack deletion"}[rng.IntN(3)], 1+rng.Int64N(6), unsynced)
		} else {
			c.arm(1+rng.Int64N(int64(3*opsPerStep)), unsynced)
		}
		for i := 0; i < 8 && !c.hasFired(); i++ {
			s := wl.next()
			c.step.Store(s.kind)
			before := c.ops.Load()
			if err := s.run(w, m); err != nil {
				w.close()
				return fail(point, "%s step: %v", s.kind, err)
			}
			steps++
			stepOps += c.ops.Load() - before
		}
		c.fire("nothing", "(at rest)", "") // if the steps ran out first
		opsPerStep = max(20, float64(stepOps)/float64(max(steps, 1)))
		if err := w.close(); err != nil {
			log.Warn("closing the world that lost power", "err", err)
		}
		res := c.result
		st.points++
		st.byStep[res.step]++
		if res.phase != "" {
			st.byPhase[res.phase]++
		}
		if rem != nil {
			st.remote++
		}
		log.Info("power cut", "point", point+1, "step", res.step, "before", res.op, "ops", res.ops, "unsynced_kept_pct", res.unsynced)

		// Power back: recover on what the disk kept, sometimes cutting the
		// power again during the recovery.
		for {
			mem, m, rem = res.fs, res.model, res.remote
			c = newCrasher(mem, m, rem, rng)
			recovering := rng.IntN(6) == 0
			if recovering {
				c.arm(1+rng.Int64N(40), []int{0, 50}[rng.IntN(2)])
				c.step.Store("recovery")
			}
			w, err = openWorld(hookFS{mem, c}, rem, clk, log)
			if err != nil {
				return fail(point, "reopen after the cut: %v", err)
			}
			if !recovering || !c.hasFired() {
				c.at.Store(0)
				break
			}
			// The cut struck the recovery: once more from what it left.
			w.close()
			res = c.result
			st.points++
			st.recovery++
			st.byStep["recovery"]++
			log.Info("power cut during recovery", "before", res.op)
		}
		v := verify(w, m)
		st.acked += v.ackedChecked
		st.visible += v.visible
		st.losses += len(v.losses)
		if !v.ok() {
			w.close()
			return fail(point, "after a cut during %s before %s (%d ops in, %d%% of unsynced data kept):\nlosses: %s\nproblems: %s",
				res.step, res.op, res.ops, res.unsynced, first(v.losses, 10), first(v.problems, 10))
		}
	}
	// A clean stop and start, every pending layer converted, a GC run:
	// still all there.
	if err := w.close(); err != nil {
		return fail(points-1, "clean close: %v", err)
	}
	c = newCrasher(mem, m, rem, rng)
	if w, err = openWorld(hookFS{mem, c}, rem, clk, log); err != nil {
		return fail(points-1, "clean reopen: %v", err)
	}
	defer w.close()
	if !w.convertAll(30 * time.Second) {
		return fail(points-1, "after the last cut: conversion queue did not drain (%d left)", w.graph.Stats().PendingConversions)
	}
	v := verify(w, m)
	if !v.ok() {
		return fail(points-1, "after the last cut, converted:\nlosses: %s\nproblems: %s", first(v.losses, 10), first(v.problems, 10))
	}
	return true
}

func first(s []string, n int) string {
	if len(s) == 0 {
		return "none"
	}
	if len(s) > n {
		return strings.Join(s[:n], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(s)-n)
	}
	return "\n  " + strings.Join(s, "\n  ")
}

// envSeed is CHUNKYARD_CRASH_SEED, or a new seed.
func envSeed(t *testing.T) uint64 {
	v := os.Getenv("CHUNKYARD_CRASH_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("CHUNKYARD_CRASH_SEED: %v", err)
	}
	return seed
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// ringLog keeps the last lines written to it.
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRingLog(n int) *ringLog { return &ringLog{lines: make([]string, n)} }

func (r *ringLog) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = string(p)
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	return len(p), nil
}

func (r *ringLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	if r.full {
		for _, l := range r.lines[r.next:] {
			b.WriteString(l)
		}
	}
	for _, l := range r.lines[:r.next] {
		b.WriteString(l)
	}
	return b.String()
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
