package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chunkyard/chunkyard/bench"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/refgraph"
)

// gcSetting is the index setting that holds the GC configuration set over
// the admin API.
const gcSetting = "gc-config"

// readGCConfigFile reads and checks a GC configuration file; nil if path
// is empty.
func readGCConfigFile(path string) (*gc.Config, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gc config: %w", err)
	}
	c, err := gc.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// loadGCConfig returns the GC configuration: the file's if one was read,
// else the one stored in the index by the admin API, else the defaults.
func loadGCConfig(file *gc.Config, path string, g *refgraph.Graph) (gc.Config, string, error) {
	if file != nil {
		return *file, path, nil
	}
	b, err := g.Setting(gcSetting)
	if errors.Is(err, refgraph.ErrNotFound) {
		return gc.Default(), "defaults", nil
	}
	if err != nil {
		return gc.Config{}, "", err
	}
	c := gc.Default()
	if err := json.Unmarshal(b, &c); err != nil {
		return gc.Config{}, "", fmt.Errorf("gc config stored in the index: %w", err)
	}
	return c, "index", c.Check()
}

// gcCmd runs `chunkyard gc`: one run against a data dir no server uses.
func gcCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	addWriteFlags(fs, &sf) // repacking writes packs
	config := fs.String("config", "", "GC configuration file (TOML; see: chunkyard gc --example); default: the one set over the admin API, else the defaults")
	dryRun := fs.Bool("dry-run", false, "list what a run would delete and reclaim; change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	example := fs.Bool("example", false, "print a documented configuration file and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *example {
		fmt.Fprint(stdout, gc.Example)
		return nil
	}
	fileCfg, err := readGCConfigFile(*config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	data, err := openData(ctx, sf, log, false)
	if err != nil {
		return err
	}
	defer data.Close()
	cfg, _, err := loadGCConfig(fileCfg, *config, data.graph)
	if err != nil {
		return err
	}
	r, err := gc.New(data.graph, data.store, log).Run(ctx, cfg, *dryRun)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(stdout, r)
	return nil
}

func printReport(w io.Writer, r *gc.Report) {
	for _, d := range r.Deletions {
		what := "manifest " + string(d.Digest)
		if d.Tag != "" {
			what = "tag " + d.Tag + " -> " + string(d.Digest)
		}
		verb := "deleted"
		if r.DryRun {
			verb = "would delete"
		}
		fmt.Fprintf(w, "%s %s: %s (%s)\n", verb, d.Repo, what, d.Why)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "tags deleted\t%d\n", r.TagsDeleted)
	fmt.Fprintf(tw, "manifests deleted\t%d\n", r.ManifestsDeleted)
	if r.DryRun {
		fmt.Fprintf(tw, "blobs left unreferenced\t%d\t(%s; removed one grace period after they lose their last reference)\n", r.BlobsDeleted, bench.HumanBytes(r.BlobBytes))
		fmt.Fprintf(tw, "reclaimable\t%d\t(%s stored, the chunks only those blobs hold; packs are rewritten below repack_below)\n", r.ReclaimableBytes, bench.HumanBytes(r.ReclaimableBytes))
		if w := r.Waiting; w != nil && (w.Links > 0 || w.Blobs > 0) {
			fmt.Fprintf(tw, "waiting for the grace period\t%d links, %d blobs\t(%s; unused already, reclaimable from %s to %s)\n",
				w.Links, w.Blobs, bench.HumanBytes(w.BlobBytes), w.First.Format(time.RFC3339), w.Last.Format(time.RFC3339))
		}
	} else {
		fmt.Fprintf(tw, "links reaped\t%d\n", r.LinksReaped)
		fmt.Fprintf(tw, "blobs deleted\t%d\t(%s)\n", r.BlobsDeleted, bench.HumanBytes(r.BlobBytes))
		fmt.Fprintf(tw, "packs repacked\t%d\t(%s of live chunks copied, %d dead chunk records dropped)\n", r.PacksRepacked, bench.HumanBytes(r.RepackCopiedBytes), r.DeadChunks)
		fmt.Fprintf(tw, "packs deleted\t%d\t(%s; %d unknown to the index)\n", r.PacksDeleted+r.UnknownPacks, bench.HumanBytes(r.PackBytesDeleted), r.UnknownPacks)
		fmt.Fprintf(tw, "stored bytes\t%d -> %d\t(%s -> %s)\n", r.StoredBefore, r.StoredAfter, bench.HumanBytes(r.StoredBefore), bench.HumanBytes(r.StoredAfter))
	}
	fmt.Fprintf(tw, "duration\t%s\n", r.Duration.Round(time.Millisecond))
	tw.Flush()
}

// fsckCmd runs `chunkyard fsck`.
func fsckCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	repair := fs.Bool("repair", false, "write the recomputed counts where they drifted")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	tempDir := fs.String("temp-dir", "", "where the recounts spill their sorted runs (about 50 bytes per chunk; removed at the end); default: the data dir")
	memory := byteSize(refgraph.DefaultCheckMemory)
	fs.Var(&memory, "memory", "memory for sorting, whatever the index's size (e.g. 64MiB, 1GiB)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	data, err := openData(ctx, sf, log, false)
	if err != nil {
		return err
	}
	defer data.Close()
	if *tempDir == "" {
		*tempDir = sf.data
	}
	r, err := gc.FsckWith(ctx, data.graph, data.store, gc.FsckOptions{Repair: *repair, TempDir: *tempDir, Memory: int(memory)})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printFsck(stdout, r)
	}
	if !r.OK() && !(r.Index.Repaired && r.Index.Broken == 0 && r.PackProblemCount == 0) {
		return errors.New("fsck found problems")
	}
	return nil
}

func printFsck(w io.Writer, r *gc.FsckReport) {
	i := r.Index
	fmt.Fprintf(w, "checked %d repositories, %d links, %d manifests, %d blobs, %d chunks, %d packs; read %d pack trailers\n",
		i.Repos, i.Links, i.Manifests, i.Blobs, i.Chunks, i.Packs, r.PacksChecked)
	for _, p := range append(i.Problems, r.PackProblems...) {
		fmt.Fprintln(w, "  ", p)
	}
	if shown := len(i.Problems) + len(r.PackProblems); shown < i.Drift+i.Broken+r.PackProblemCount {
		fmt.Fprintf(w, "   (%d more not listed)\n", i.Drift+i.Broken+r.PackProblemCount-shown)
	}
	repaired := ""
	if i.Repaired {
		repaired = fmt.Sprintf(" (repaired: %d fixes", i.Repairs)
		if i.RepairsSkipped > 0 {
			repaired += fmt.Sprintf(", %d moot: changed meanwhile", i.RepairsSkipped)
		}
		repaired += ")"
	}
	fmt.Fprintf(w, "drift %d%s, broken references %d, pack problems %d, unknown packs %d (garbage for gc)\n",
		i.Drift, repaired, i.Broken, r.PackProblemCount, r.UnknownPacks)
	if r.ChangedMeanwhile > 0 {
		fmt.Fprintf(w, "%d chunks or packs changed while fsck ran (moved or released by pushes and gc): not problems\n", r.ChangedMeanwhile)
	}
}

// gcService runs GC inside serve: on a schedule, and on demand over the
// admin API, with a configuration the API may replace.
type gcService struct {
	col     *gc.Collector
	graph   *refgraph.Graph
	store   gc.Store
	tempDir string // where an online fsck spills its sorted runs
	log     *slog.Logger

	mu     sync.Mutex
	cfg    gc.Config
	reload chan struct{} // the configuration changed
}

func newGCService(col *gc.Collector, g *refgraph.Graph, store gc.Store, tempDir string, cfg gc.Config, log *slog.Logger) *gcService {
	return &gcService{col: col, graph: g, store: store, tempDir: tempDir, cfg: cfg, log: log, reload: make(chan struct{}, 1)}
}

func (s *gcService) config() gc.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// run runs GC every Interval until ctx ends, and deletes retired packs
// when their pack grace period is over, between runs.
func (s *gcService) run(ctx context.Context) {
	lastRun := time.Now()
	var packsDue time.Time // zero: none waits
	for {
		cfg := s.config()
		wake, full := nextGCWake(lastRun, cfg.Interval.D(), packsDue)
		var tick <-chan time.Time
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(time.Until(wake))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.reload:
		case <-tick:
			var r *gc.Report
			if full {
				lastRun = time.Now()
				r, _ = s.col.Run(ctx, cfg, false) // logs its report or error
			} else {
				r, _ = s.col.DeletePacks(ctx, cfg)
			}
			if r != nil {
				packsDue = r.NextPackDeletion
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// nextGCWake returns when GC should wake next: for the next scheduled run
// (full), or earlier, when a retired pack may be deleted; zero: never
// (no schedule, nothing waiting).
func nextGCWake(lastRun time.Time, interval time.Duration, packsDue time.Time) (wake time.Time, full bool) {
	if interval > 0 {
		wake, full = lastRun.Add(interval), true
	}
	if !packsDue.IsZero() && (wake.IsZero() || packsDue.Before(wake)) {
		wake, full = packsDue, false
	}
	return wake, full
}

// handler serves the admin API:
//
//	GET  /admin/gc/config        the GC configuration (JSON)
//	PUT  /admin/gc/config        replace it (JSON, same fields; kept in the index)
//	POST /admin/gc/run[?dry_run=1]  run now and return the report
//	GET  /admin/gc/last          the last scheduled or on-demand run's report
//	POST /admin/fsck[?repair=1]  fsck while serving (the same report as chunkyard fsck --json)
func (s *gcService) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/gc/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.config())
	})
	mux.HandleFunc("PUT /admin/gc/config", func(w http.ResponseWriter, r *http.Request) {
		c := gc.Default()
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if err := c.Check(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		b, _ := json.Marshal(c)
		if err := s.graph.PutSetting(gcSetting, b); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		s.mu.Lock()
		s.cfg = c
		s.mu.Unlock()
		select {
		case s.reload <- struct{}{}:
		default:
		}
		s.log.Info("gc configuration replaced over the admin API", "policies", len(c.Policies))
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("POST /admin/gc/run", func(w http.ResponseWriter, r *http.Request) {
		dry := r.URL.Query().Get("dry_run")
		rep, err := s.col.Run(r.Context(), s.config(), dry == "1" || dry == "true")
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "report": rep})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("GET /admin/gc/last", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.col.Last())
	})
	// fsck while serving: the recount reads a snapshot of the index and
	// spills to disk, so pushes and pulls go on; ?repair=1 applies the
	// fixes, each re-checked in its own batch.
	mux.HandleFunc("POST /admin/fsck", func(w http.ResponseWriter, r *http.Request) {
		repair := r.URL.Query().Get("repair")
		rep, err := gc.FsckWith(r.Context(), s.graph, s.store, gc.FsckOptions{
			Repair: repair == "1" || repair == "true", TempDir: s.tempDir})
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
