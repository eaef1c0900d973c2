package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/registry"
)

// maxAdvisoryZip bounds an advisory zip posted to the admin API (osv.dev's
// all.zip of every ecosystem is about 1 GiB).
const maxAdvisoryZip = 4 << 30

// vulndbHandler serves the advisory part of the admin API:
//
//	POST /admin/vulndb/import   body: one OSV JSON record, or a zip of them
//	                            (osv.dev's all.zip); imports while serving,
//	                            then matches the images it concerns again
//	GET  /admin/vulndb          the feed: time, records, generation
func vulndbHandler(svc *registry.Service, spoolDir string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/vulndb/import", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		res, err := svc.ImportAdvisories(r.Context(), r.Body, spoolDir, maxAdvisoryZip)
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, registry.ErrAdvisoryInvalid):
				status = http.StatusBadRequest
			case errors.Is(err, registry.ErrTooLarge):
				status = http.StatusRequestEntityTooLarge
			}
			writeJSON(w, status, map[string]any{"error": err.Error(), "import": res})
			return
		}
		log.Info("advisories imported over the admin API", "read", res.Read, "added", res.Added, "updated", res.Updated,
			"withdrawn", res.Withdrawn, "bad", res.Bad, "changed_packages", res.ChangedPackages,
			"feed_time", res.Feed.Time, "generation", res.Feed.Generation, "duration", time.Since(start).Round(time.Millisecond))
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /admin/vulndb", func(w http.ResponseWriter, r *http.Request) {
		fi, err := svc.ScanDB().Feed(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, fi)
	})
	return mux
}

// vulndbCmd runs `chunkyard vulndb import PATH`: OSV advisories from a
// JSON file, a zip (all.zip) or a directory (incremental with its
// modified_id.csv), into a stopped data dir or through a running
// server's admin API.
func vulndbCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(stderr, "usage: chunkyard vulndb import [--data DIR | --admin-addr HOST:PORT] [--json] PATH")
		return fmt.Errorf("vulndb: want the subcommand import")
	}
	fs := flag.NewFlagSet("vulndb import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	adminAddr := fs.String("admin-addr", "", "import through the admin API of the server running there (HOST:PORT), instead of into a stopped --data dir")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("vulndb import: want one PATH (an OSV JSON file, a zip such as all.zip, or a directory), got %d", fs.NArg())
	}
	path := fs.Arg(0)
	var res registry.ImportResult
	if *adminAddr != "" {
		var err error
		if res, err = postAdvisories(ctx, *adminAddr, path); err != nil {
			return err
		}
	} else {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		data, err := openData(ctx, sf, log, false)
		if err != nil {
			return err
		}
		defer data.Close()
		svc, err := offlineService(data, sf, log)
		if err != nil {
			return err
		}
		defer svc.Close()
		if res, err = svc.ImportAdvisoriesPath(ctx, path); err != nil {
			return err
		}
		// Match the stored images that hold a changed package again, as a
		// server does after an import.
		st, err := svc.Rematch(ctx, res.Changed, false)
		if err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "matched again %d images (of %d layers holding a changed package) in %s\n", st.Images, st.Layers, st.Duration.Round(time.Millisecond))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "read %d records: %d added, %d updated, %d unchanged, %d withdrawn, %d bad\n",
		res.Read, res.Added, res.Updated, res.Unchanged, res.Withdrawn, res.Bad)
	for _, b := range res.BadRecords {
		fmt.Fprintf(stdout, "  bad: %s\n", b)
	}
	fmt.Fprintf(stdout, "feed: %d records (%d withdrawn), newest %s, generation %d\n",
		res.Feed.Records, res.Feed.Withdrawn, res.Feed.Time.Format(time.RFC3339), res.Feed.Generation)
	return nil
}

// offlineService is the registry service over a stopped data dir, with
// scanning on (no background work runs: nothing calls Run).
func offlineService(data *dataDir, sf storeFlags, log *slog.Logger) (*registry.Service, error) {
	return registry.New(data.graph, data.store, registry.Options{
		UploadDir: filepath.Join(sf.data, "uploads"),
		Logger:    log,
		Convert:   registry.ConvertOptions{PendingDir: filepath.Join(sf.data, "pending")},
		Scan:      registry.ScanOptions{Workers: 1},
	})
}

// postAdvisories sends path to a server's POST /admin/vulndb/import: a
// file as it is, a directory as a zip of its *.json records, made while
// it is sent.
func postAdvisories(ctx context.Context, addr, path string) (registry.ImportResult, error) {
	var res registry.ImportResult
	st, err := os.Stat(path)
	if err != nil {
		return res, err
	}
	var body io.Reader
	if st.IsDir() {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(zipRecords(pw, path)) }()
		defer pr.Close()
		body = pr
	} else {
		f, err := os.Open(path)
		if err != nil {
			return res, err
		}
		defer f.Close()
		body = f
	}
	url := strings.TrimSuffix(addr, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/admin/vulndb/import", body)
	if err != nil {
		return res, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, fmt.Errorf("vulndb import: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return res, fmt.Errorf("vulndb import: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("vulndb import: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("vulndb import: the answer: %w", err)
	}
	return res, nil
}

// zipRecords writes a zip of the *.json files below dir.
func zipRecords(w io.Writer, dir string) error {
	zw := zip.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, p)
		zf, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		_, err = io.Copy(zf, f)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

// parseInterleaved parses flags that may come after the positional
// arguments too ("scan repo:tag --format json").
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(pos) // leaves them as fs.Args(); no flags among them
}
