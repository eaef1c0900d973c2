package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/scan"
)

// scanCmd runs `chunkyard scan REPO:TAG|REPO@DIGEST`: the image's
// vulnerability report from a running server (--server), or from a
// stopped data dir (--data), where layers not analyzed yet are analyzed
// now.
func scanCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	server := fs.String("server", "", "ask the server running there (http://HOST:PORT) instead of reading a stopped --data dir")
	format := fs.String("format", "table", "table, json, sarif or cyclonedx")
	platform := fs.String("platform", "", "for an index, the platform image to report (os/arch[/variant]); sarif and cyclonedx need one if the index has several")
	wait := fs.Duration("wait", 10*time.Minute, "with --server, how long to wait for a scan queued or running")
	attach := fs.Bool("attach-sbom", false, "with --server, also push the image's CycloneDX SBOM to the repository as an OCI referrer of the image (artifactType "+ArtifactTypeCycloneDX+"; each reported platform image of an index)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("scan: want one image reference REPO:TAG or REPO@DIGEST, got %d arguments", fs.NArg())
	}
	switch *format {
	case scan.FormatTable, scan.FormatJSON, scan.FormatSARIF, scan.FormatCycloneDX:
	default:
		return fmt.Errorf("--format %q: want table, json, sarif or cyclonedx", *format)
	}
	if *attach && *server == "" {
		return fmt.Errorf("--attach-sbom needs --server (it pushes through the registry API)")
	}
	repo, ref, err := parseImageRef(fs.Arg(0))
	if err != nil {
		return err
	}
	var (
		one *scan.Report
		idx *scan.IndexReport
	)
	if *server != "" {
		one, idx, err = fetchReport(ctx, *server, repo, ref, *wait, stderr)
	} else {
		one, idx, err = localReport(ctx, sf, repo, ref, stderr)
	}
	if err != nil {
		return err
	}
	if idx == nil {
		if *attach {
			if err := attachSBOMs(ctx, *server, repo, []scan.Report{*one}, stderr); err != nil {
				return err
			}
		}
		return scan.WriteReport(stdout, one, *format)
	}
	reports := idx.Reports
	if *platform != "" {
		reports = nil
		for _, r := range idx.Reports {
			if r.Platform == *platform {
				reports = append(reports, r)
			}
		}
		if len(reports) == 0 {
			return fmt.Errorf("--platform %s: the index has no such image", *platform)
		}
	}
	if *attach {
		if err := attachSBOMs(ctx, *server, repo, reports, stderr); err != nil {
			return err
		}
	}
	switch {
	case *format == scan.FormatJSON && *platform == "":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(idx)
	case len(reports) == 1:
		return scan.WriteReport(stdout, &reports[0], *format)
	case *format == scan.FormatTable:
		fmt.Fprintf(stdout, "index     %s (%d platform images)\n", idx.Index, len(reports))
		for i := range reports {
			fmt.Fprintln(stdout)
			if err := scan.WriteReport(stdout, &reports[i], *format); err != nil {
				return err
			}
		}
		return nil
	}
	var names []string
	for _, r := range reports {
		names = append(names, r.Platform)
	}
	return fmt.Errorf("the index has %d platform images (%s): choose one with --platform for --format %s", len(reports), strings.Join(names, ", "), *format)
}

// attachSBOMs pushes each report's SBOM as a referrer of its image
// (sbom.go) and says so on stderr.
func attachSBOMs(ctx context.Context, server, repo string, reports []scan.Report, stderr io.Writer) error {
	for i := range reports {
		d, err := attachSBOM(ctx, http.DefaultClient, serverBase(server), repo, &reports[i])
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "scan: attached the SBOM of %s as %s@%s\n", reports[i].Image, repo, d)
	}
	return nil
}

// serverBase is --server as a URL without a trailing slash (http:// if
// it names no scheme).
func serverBase(server string) string {
	base := strings.TrimSuffix(server, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return base
}

// parseImageRef splits REPO:TAG or REPO@DIGEST (a bare REPO means
// REPO:latest); a registry host in front is dropped.
func parseImageRef(s string) (repo, ref string, err error) {
	if i := strings.Index(s, "@"); i >= 0 {
		repo, ref = s[:i], s[i+1:]
	} else if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		repo, ref = s[:i], s[i+1:]
	} else {
		repo, ref = s, "latest"
	}
	if first, rest, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		repo = rest
	}
	if repo == "" || ref == "" {
		return "", "", fmt.Errorf("image reference %q: want REPO:TAG or REPO@DIGEST", s)
	}
	return repo, ref, nil
}

// localReport scans an image of a stopped data dir.
func localReport(ctx context.Context, sf storeFlags, repo, ref string, stderr io.Writer) (*scan.Report, *scan.IndexReport, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	data, err := openData(ctx, sf, log, false)
	if err != nil {
		return nil, nil, err
	}
	defer data.Close()
	svc, err := offlineService(data, sf, log)
	if err != nil {
		return nil, nil, err
	}
	defer svc.Close()
	if err := svc.ScanDB().RecoverImport(ctx); err != nil {
		return nil, nil, err
	}
	res, err := svc.ScanNow(ctx, repo, ref)
	if err != nil {
		return nil, nil, err
	}
	if res.Status != registry.ScanDone {
		return nil, nil, fmt.Errorf("scan of %s:%s not done (%d of %d layers analyzed)", repo, ref, res.Analyzed, res.Layers)
	}
	return res.Report, res.Index, nil
}

// fetchReport asks a server for a report, waiting while it is queued or
// running.
func fetchReport(ctx context.Context, server, repo, ref string, wait time.Duration, stderr io.Writer) (*scan.Report, *scan.IndexReport, error) {
	u := serverBase(server) + "/chunkyard/v1/" + repo + "/scan/" + url.PathEscape(ref)
	deadline := time.Now().Add(wait)
	said := false
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("scan: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("scan: reading the report: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return decodeReport(body)
		case http.StatusAccepted:
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("scan: still not done after %s: %s", wait, strings.TrimSpace(string(body)))
			}
			if !said {
				fmt.Fprintf(stderr, "scan: waiting for the server to analyze the image's layers: %s\n", strings.TrimSpace(string(body)))
				said = true
			}
			delay := time.Second
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
				delay = time.Duration(n) * time.Second
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(delay):
			}
		default:
			return nil, nil, fmt.Errorf("scan: %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
	}
}

// decodeReport decodes a report as served: an image's, or an index's.
func decodeReport(body []byte) (*scan.Report, *scan.IndexReport, error) {
	var probe struct {
		Index *string `json:"index"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, nil, fmt.Errorf("scan: the report: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if probe.Index != nil {
		var idx scan.IndexReport
		if err := dec.Decode(&idx); err != nil {
			return nil, nil, fmt.Errorf("scan: the report: %w", err)
		}
		return nil, &idx, nil
	}
	var r scan.Report
	if err := dec.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("scan: the report: %w", err)
	}
	return &r, nil, nil
}
