package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/replication"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:5000", "address to listen on")
	var sf storeFlags
	addStoreFlags(fs, &sf)
	addWriteFlags(fs, &sf)
	uploadTTL := fs.Duration("upload-ttl", 24*time.Hour, "idle upload sessions older than this expire")
	maxManifest := sizeFlag(fs, "max-manifest-size", 4<<20, "largest manifest accepted")
	shutdownTimeout := fs.Duration("shutdown-timeout", 60*time.Second, "how long in-flight requests may take to finish on SIGINT/SIGTERM")
	ioTimeout := fs.Duration("io-timeout", time.Minute, "a client that sends or takes no byte of a request or response for this long is cut off (0: never)")
	convertWorkers := fs.Int("convert-workers", 1, "layers converted (split, chunked, encoder found) at once in the background; 0: chunk every blob opaque on push")
	maxInflated := sizeFlag(fs, "max-inflated-size", 16<<30, "layers that decompress past this size stay opaque")
	maxRatio := fs.Float64("max-inflate-ratio", 100, "layers that decompress past this ratio stay opaque")
	convertYield := fs.Duration("convert-yield", 2*time.Minute, "how long one layer conversion may pause, in all, while uploads are in flight (negative: never)")
	layerCacheSize := sizeFlag(fs, "layer-cache-size", 4<<30, "encoded layers kept for hot pulls in --layer-cache-dir (0: none kept; cold layers are still encoded there while pulled)")
	layerCacheDir := fs.String("layer-cache-dir", "", "directory of the encoded layer cache (default DATA/layer-cache)")
	maxEncodes := fs.Int("max-encodes", 0, "encoding goroutines running at once, all cold pulls together; more pulls wait (0: 2 per CPU)")
	encodePar := fs.Int("encode-parallelism", 0, "goroutines (cores) one cold pull of a layer with checkpoints may encode on, while --max-encodes has them free (0: one per CPU)")
	helperDir := fs.String("codec-helpers", "", codecHelpersUsage)
	gcConfig := fs.String("gc-config", "", "GC configuration file (TOML; see: chunkyard gc --example); default: the one set over the admin API, else the defaults (hourly, no retention policy)")
	adminAddr := fs.String("admin-addr", "", "if set, serve the admin API (GC configuration and runs, advisory imports) on this address; with authentication on, admins only ([auth] admins), else open: keep it on loopback")
	scanWorkers := fs.Int("scan-workers", 1, "layers analyzed at once for vulnerability scanning, in the background; 0: no scanning")
	scanMaxFile := sizeFlag(fs, "scan-max-file-size", 256<<20, "files an analyzer wants that are larger are skipped with a note")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go's pprof profiles on this address (keep it on loopback)")
	var uf upstreamFlags
	addUpstreamFlags(fs, &uf) // upstream.go
	var of opsFlags
	addOpsFlags(fs, &of) // ops.go: --quota, --usage-interval
	var rf replFlags
	addReplFlags(fs, &rf) // replicate.go
	var sec secFlags
	addSecFlags(fs, &sec) // servesec.go
	var rdf redirectFlags
	addRedirectFlags(fs, &rdf)                      // redirect.go
	fc, err := loadConfigFile(fs, configPath(args)) // config.go
	if err != nil {
		return err
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	// Validate everything and take the ports before the data dir is
	// touched: a typo or a busy port must not initialise a data dir.
	if err := sf.check(); err != nil {
		return err
	}
	switch {
	case *convertWorkers < 0:
		return fmt.Errorf("--convert-workers %d: must be 0 or more", *convertWorkers)
	case *maxRatio <= 0:
		return fmt.Errorf("--max-inflate-ratio %g: must be positive", *maxRatio)
	case *maxEncodes < 0:
		return fmt.Errorf("--max-encodes %d: must be 0 or more", *maxEncodes)
	case *encodePar < 0:
		return fmt.Errorf("--encode-parallelism %d: must be 0 or more", *encodePar)
	case *scanWorkers < 0:
		return fmt.Errorf("--scan-workers %d: must be 0 or more", *scanWorkers)
	case of.usageInterval <= 0:
		return fmt.Errorf("--usage-interval %s: must be positive", of.usageInterval)
	}
	if err := sec.check(); err != nil {
		return err
	}
	if err := rdf.check(); err != nil {
		return err
	}
	authn, err := newAuth(&sec, fc, log)
	if err != nil {
		return err
	}
	var certs *certReloader
	if sec.tlsCert != "" {
		if certs, err = newCertReloader(sec.tlsCert, sec.tlsKey, log); err != nil {
			return err
		}
	}
	gcFileCfg, err := readGCConfigFile(*gcConfig)
	if err != nil {
		return err
	}
	if gcFileCfg == nil && fc.gc != nil {
		gcFileCfg, *gcConfig = fc.gc, fc.path+" [gc]"
	}
	fallback, err := uf.fallback(*maxManifest, log)
	if err != nil {
		return err
	}
	replCfg, err := rf.load()
	if err != nil {
		return err
	}
	if rf.pullPeer != "" && fallback != nil {
		return errors.New("--pull-from-peer and --upstream: one pull-through source at a time")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	var aln, dln net.Listener
	if *adminAddr != "" {
		if aln, err = net.Listen("tcp", *adminAddr); err != nil {
			return fmt.Errorf("--admin-addr: %w", err)
		}
		defer aln.Close()
	}
	if *debugAddr != "" {
		if dln, err = net.Listen("tcp", *debugAddr); err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer dln.Close()
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Serve /healthz and /readyz (503 until recovery and helper discovery
	// are done) from now on; the API opens once ready.
	apiGate, adminGate := newGate(), newGate()
	srv := &http.Server{
		Handler:           accessLog(log, sec.accessLog, apiGate),
		ReadHeaderTimeout: sec.readHeaderTimeout,
		IdleTimeout:       sec.idleTimeout,
	}
	defer srv.Close() // if starting fails; a clean stop shuts down first
	errc := make(chan error, 1)
	if certs != nil {
		srv.TLSConfig = certs.tlsConfig()
		go func() { errc <- srv.ServeTLS(ln, "", "") }() // HTTP/2 too
	} else {
		if !isLoopback(ln.Addr()) {
			log.Warn("serving plain HTTP on a non-loopback address: credentials and content travel in clear; use --tls-cert/--tls-key", "addr", ln.Addr().String())
		}
		go func() { errc <- srv.Serve(ln) }()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if certs != nil {
				if err := certs.reload(); err != nil {
					log.Error("SIGHUP: TLS certificate not reloaded", "err", err)
				} else {
					log.Info("SIGHUP: TLS certificate reloaded")
				}
			}
			if err := authn.Reload(); err != nil {
				log.Error("SIGHUP: htpasswd not reloaded", "err", err)
			} else if authn != nil {
				log.Info("SIGHUP: htpasswd reloaded")
			}
		}
	}()
	var asrv *http.Server
	if aln != nil {
		asrv = &http.Server{Handler: accessLog(log, sec.accessLog, adminGate), ReadHeaderTimeout: sec.readHeaderTimeout, IdleTimeout: sec.idleTimeout}
		if certs != nil {
			asrv.TLSConfig = certs.tlsConfig()
			go asrv.ServeTLS(aln, "", "")
		} else {
			go asrv.Serve(aln)
		}
		defer asrv.Close()
	}

	data, err := openData(ctx, sf, log, true)
	if err != nil {
		return err
	}
	defer func() {
		if err := data.Close(); err != nil {
			log.Error("closing data dir", "err", err)
		}
	}()
	if err := loadHelpers(ctx, *helperDir, data.graph, log); err != nil {
		return err
	}
	// The layer cache is also where cold layers are encoded for their
	// pulls (one encode per layer however many pull it, at full speed
	// whatever the clients' pace): with a size of 0 an entry goes as soon
	// as its pulls are done.
	if *layerCacheDir == "" {
		*layerCacheDir = filepath.Join(sf.data, "layer-cache")
	}
	layerCache, err := chunkstore.OpenFileCache(*layerCacheDir, max(*layerCacheSize, 0), log)
	if err != nil {
		return err
	}
	layerCache.SyncEntries()
	if pf, err := rf.peerFallback(replCfg, data.graph, data.store, log); err != nil { // replicate.go
		return err
	} else if pf != nil {
		defer pf.Close()
		fallback = pf
	}
	svc, err := registry.New(data.graph, data.store, registry.Options{
		UploadDir:         filepath.Join(sf.data, "uploads"),
		UploadTTL:         *uploadTTL,
		MaxManifestSize:   *maxManifest,
		Logger:            log,
		LayerCache:        layerCache,
		MaxEncodes:        *maxEncodes,
		EncodeParallelism: *encodePar,
		Convert: registry.ConvertOptions{
			Workers:     *convertWorkers,
			PendingDir:  filepath.Join(sf.data, "pending"),
			MaxInflated: *maxInflated,
			MaxRatio:    *maxRatio,
			MaxYield:    *convertYield,
		},
		Scan:           registry.ScanOptions{Workers: *scanWorkers, MaxFileSize: *scanMaxFile},
		Fallback:       fallback,
		FallbackTagTTL: uf.tagTTL,
		UniformCommit:  authn != nil, // README "Security"
	})
	if err != nil {
		return err
	}
	gcCfg, gcFrom, err := loadGCConfig(gcFileCfg, *gcConfig, data.graph)
	if err != nil {
		return err
	}
	col := gc.New(data.graph, data.store, log)
	col.OnBlobDeleted = svc.BlobDeleted
	gcs := newGCService(col, data.graph, data.store, sf.data, gcCfg, log)
	log.Info("gc configured", "from", gcFrom, "interval", gcCfg.Interval.D(), "policies", len(gcCfg.Policies))
	opsSrv, err := newOpsServer(of, data, svc, col, sf.data, log) // usage, quotas, metrics (ops.go)
	if err != nil {
		return err
	}

	// Background work (upload expiry, the layer converter, GC) stops, and
	// is waited for, before the data dir closes (the deferred Close above
	// runs after this).
	bg, cancelBg := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	bgWG.Add(3)
	go func() {
		defer bgWG.Done()
		svc.Run(bg)
	}()
	go func() {
		defer bgWG.Done()
		opsSrv.run(bg)
	}()
	go func() {
		defer bgWG.Done()
		gcs.run(bg)
	}()
	defer func() {
		cancelBg()
		bgWG.Wait()
		svc.Close()
	}()

	if aln != nil {
		admin := http.NewServeMux()
		vulndb := vulndbHandler(svc, "", log) // vulndb.go
		admin.Handle("/admin/vulndb", vulndb)
		admin.Handle("/admin/vulndb/", vulndb)
		admin.Handle("/", gcs.handler())
		opsSrv.register(admin)
		// Admin requests (a GC run) end with the background work.
		var h http.Handler = withBase(bg, admin)
		if authn != nil {
			h = authn.AdminMiddleware(h)
		}
		adminGate.open(h)
		log.Info("serving the admin API", "addr", aln.Addr().String())
	}

	if dln != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go http.Serve(dln, mux)
		log.Info("serving pprof", "addr", dln.Addr().String())
	}

	apiOpts := ocihttp.Options{Logger: log, MaxManifestSize: *maxManifest, IOTimeout: *ioTimeout, Auth: authn}
	rcache, err := openRedirect(ctx, rdf, sf, log) // redirect.go
	if err != nil {
		return err
	}
	if rcache != nil {
		defer rcache.Close() // its uploads read the data dir: before it closes
		apiOpts.Redirect = rcache
	}
	var api http.Handler = ocihttp.NewHandler(svc, apiOpts)
	uploadLim := newUploadLimiter(sec.maxUploads, sec.maxUploadBytes, filepath.Join(sf.data, "uploads"))
	go uploadLim.run(bg.Done())
	api = uploadLim.wrap(api)
	// Outside in: metrics (every request counted, refusals too), who is
	// asking, may they (before the quota check can say anything about a
	// repository), the quota, the upload limits, the API.
	api = opsSrv.usage.Quota(api, opsSrv.svc)
	if authn != nil {
		api = authn.Middleware(authorizeEarly(authn, api)) // servesec.go
	}
	// Replication's node-to-node endpoints (replicate.go): with auth on,
	// an admin's credentials only.
	rc, sender, err := startReplication(replCfg, rf, data.graph, data.store, svc, layerCache, log)
	if err != nil {
		return err
	}
	defer rc.Close()
	var replAPI http.Handler = rc
	if authn != nil {
		replAPI = authn.AdminMiddleware(replAPI)
	}
	api = replication.Mount(api, replAPI)
	if sender != nil {
		if err := opsSrv.metrics.Register(sender.Collector()); err != nil {
			return err
		}
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			sender.Run(bg)
		}()
	}
	api = opsSrv.metrics.Middleware(api)
	apiGate.open(api)
	log.Info("chunkyard serving", "addr", ln.Addr().String(), "tls", certs != nil, "auth", authn != nil,
		"token_endpoint", authn.TokenEndpoint(), "data", sf.data, "storage", sf.storage, "version", versionString())
	if uf.url != "" {
		log.Info("pull-through cache", "upstream", uf.url, "tag_ttl", uf.tagTTL)
	}

	var failed error
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-data.graph.Failed():
		// Fail-stop: the index takes no more writes; a restart (once the
		// disk is fixed) recovers everything acknowledged.
		failed = fmt.Errorf("serve: %w; restart once the disk under --data is fixed", data.graph.Err())
		log.Error("stopping", "err", failed)
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for in-flight requests", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		log.Warn("in-flight requests cut off", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if failed != nil {
		return failed
	}
	log.Info("stopped")
	return nil
}

// loadHelpers loads the encoder helpers from dir (default: beside this
// executable) and checks that every encoder class the store's layers were
// found with can still be written: without it those layers could not be
// pulled, so the server refuses to start.
func loadHelpers(ctx context.Context, dir string, graph *refgraph.Graph, log *slog.Logger) error {
	if err := loadCodecHelpers(ctx, dir, log); err != nil {
		return err
	}
	used, err := graph.Encodings()
	if err != nil {
		return err
	}
	var missing []string
	for class, n := range used {
		encoder, version, _ := strings.Cut(class, " ")
		if !codec.Available(encoder, version) {
			missing = append(missing, fmt.Sprintf("%s (%d layers)", class, n))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("layers in this store need encoder classes this server cannot write: %s; %s",
			strings.Join(missing, ", "), helpersFound())
	}
	return nil
}

// helpersFound says which encoder helpers were found and what each can
// write, so that a missing class can be traced to its cause: no helper at
// all (build them), or a helper whose tool writes another class now.
func helpersFound() string {
	probed := codec.ProbedHelpers()
	if len(probed) == 0 {
		return "no encoder helper was found: build them next to chunkyard (scripts/build) or pass --codec-helpers DIR"
	}
	var parts []string
	for _, h := range probed {
		var classes []string
		for enc, class := range h.Classes {
			classes = append(classes, enc+" "+class)
		}
		slices.Sort(classes)
		desc := strings.Join(classes, ", ")
		if desc == "" {
			desc = "nothing (its tool is missing here or not the expected one)"
		}
		parts = append(parts, fmt.Sprintf("%s writes %s", filepath.Base(h.Path), desc))
	}
	return "the encoder helpers found: " + strings.Join(parts, "; ") +
		". A helper that is there but writes another class is not the build this server expects: rebuild the helpers with scripts/build"
}

// codecHelpersUsage is the --codec-helpers flag's usage.
const codecHelpersUsage = "directory of the encoder helpers (chunkyard-codec-*) that reproduce other klauspost versions' output (default: the directory of this executable)"

// loadCodecHelpers loads the encoder helpers in dir, or beside this
// executable if dir is "".
func loadCodecHelpers(ctx context.Context, dir string, log *slog.Logger) error {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("locating encoder helpers: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	added, err := codec.LoadHelpers(ctx, dir)
	if err != nil {
		return err
	}
	if len(added) == 0 {
		log.Warn("no encoder helpers found: layers only another klauspost/compress version reproduces (regctl's zstd) count as opaque", "dir", dir)
	} else {
		log.Info("encoder helpers loaded", "dir", dir, "classes", added)
	}
	return nil
}
