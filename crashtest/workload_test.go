package crashtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// workload makes the random pushes, conversions and GC runs of one test,
// all drawn from one seeded generator.
type workload struct {
	rng   *rand.Rand
	files [][]byte // file contents layers draw from, so that layers share chunks
	seq   int
}

// repos are where images go: keep/* have no retention policy, gc/* keep
// their newest tag only (gcConfig).
var repos = []string{"keep/a", "keep/b", "gc/a", "gc/b"}

func newWorkload(seed uint64) *workload {
	wl := &workload{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	for range 10 {
		wl.files = append(wl.files, wl.random(512+wl.rng.IntN(10<<10)))
	}
	return wl
}

func (wl *workload) random(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(wl.rng.Uint32())
	}
	return b
}

// layer returns a new layer: a gzip tar (most often; the converter splits
// it), a plain tar, or random bytes (stored opaque), built from the shared
// files with a few changes.
func (wl *workload) layer() (blob []byte, mediaType string) {
	kind := wl.rng.IntN(10)
	if kind == 0 {
		return wl.random(1 + wl.rng.IntN(20<<10)), "application/octet-stream"
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i := range 1 + wl.rng.IntN(4) {
		content := wl.files[wl.rng.IntN(len(wl.files))]
		if wl.rng.IntN(2) == 0 {
			content = append([]byte(nil), content...)
			content[wl.rng.IntN(len(content))] ^= byte(1 + wl.rng.IntN(255))
		}
		hdr := &tar.Header{Name: fmt.Sprintf("dir/f%d-%d", wl.seq, i), Mode: 0o644, Size: int64(len(content)),
			ModTime: time.Unix(int64(1_700_000_000+wl.rng.IntN(1000)), 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		tw.Write(content)
	}
	tw.Close()
	if kind <= 2 {
		return tb.Bytes(), "application/vnd.oci.image.layer.v1.tar"
	}
	var gb bytes.Buffer
	levels := []int{gzip.DefaultCompression, gzip.BestSpeed, gzip.BestCompression}
	zw, err := gzip.NewWriterLevel(&gb, levels[wl.rng.IntN(len(levels))])
	if err != nil {
		panic(err)
	}
	zw.Write(tb.Bytes())
	zw.Close()
	return gb.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip"
}

// step is one unit of the workload; kind names it in the counts.
type step struct {
	kind string
	run  func(w *world, m *model) error
}

// next draws the next step.
func (wl *workload) next() step {
	wl.seq++
	switch r := wl.rng.IntN(20); {
	case r < 9:
		repo := repos[wl.rng.IntN(len(repos))]
		return wl.pushImage(repo, "v"+strconv.Itoa(wl.seq))
	case r < 10:
		// The remote store is down: sealed packs wait in staging, pushes
		// go on.
		push := wl.pushImage(repos[wl.rng.IntN(len(repos))], "v"+strconv.Itoa(wl.seq))
		return step{"push", func(w *world, m *model) error {
			if w.remote != nil {
				w.remote.fail.Store(true)
				defer w.remote.fail.Store(false)
			}
			return push.run(w, m)
		}}
	case r < 12:
		// A push while the converter works.
		push := wl.pushImage(repos[wl.rng.IntN(len(repos))], "v"+strconv.Itoa(wl.seq))
		return step{"push+convert", func(w *world, m *model) error {
			w.startService()
			if err := push.run(w, m); err != nil {
				return err
			}
			if !w.convertAll(10 * time.Second) {
				return fmt.Errorf("conversion queue did not drain in 10 s (%d left)", w.graph.Stats().PendingConversions)
			}
			return nil
		}}
	case r < 13 && wl.rng.IntN(3) == 0:
		// A clean stop and start.
		return step{"restart", func(w *world, m *model) error { return w.restart() }}
	case r < 13 && wl.rng.IntN(2) == 0:
		// Two clients push at once: their chunks share packs and fsyncs.
		// Into different repositories: which of two tags pushed at once
		// into a gc/* repository is the newest, that retention keeps, is
		// the index's to say.
		a := wl.pushImage(repos[wl.rng.IntN(2)], "v"+strconv.Itoa(wl.seq)+"a")   // keep/*
		b := wl.pushImage(repos[2+wl.rng.IntN(2)], "v"+strconv.Itoa(wl.seq)+"b") // gc/*
		return step{"push", func(w *world, m *model) error {
			errs := make(chan error, 1)
			go func() { errs <- a.run(w, m) }()
			err := b.run(w, m)
			return errors.Join(err, <-errs)
		}}
	case r < 13:
		blob, _ := wl.layer()
		repo := repos[wl.rng.IntN(len(repos))]
		mode := wl.rng.IntN(3)
		return step{"push", func(w *world, m *model) error { return pushBlob(w, m, repo, blob, mode) }}
	case r < 17:
		return step{"convert", func(w *world, m *model) error {
			if !w.convertAll(10 * time.Second) {
				return fmt.Errorf("conversion queue did not drain in 10 s (%d left)", w.graph.Stats().PendingConversions)
			}
			return nil
		}}
	default:
		return step{"gc", func(w *world, m *model) error {
			m.gcStarts()
			_, err := w.col.Run(context.Background(), gcConfig(), false)
			return err
		}}
	}
}

// pushImage pushes an image of one to three layers and a config, then its
// manifest under tag, each blob by a randomly chosen upload flow.
func (wl *workload) pushImage(repo, tag string) step {
	type blob struct {
		data      []byte
		mediaType string
		mode      int
	}
	var layers []blob
	for range 1 + wl.rng.IntN(3) {
		b, mt := wl.layer()
		layers = append(layers, blob{b, mt, wl.rng.IntN(3)})
	}
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"comment":"image %d %x"}`,
		wl.seq, wl.rng.Uint64()))
	cfg := blob{config, "application/vnd.oci.image.config.v1+json", wl.rng.IntN(3)}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	man := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", desc{cfg.mediaType, sha256Digest(cfg.data), len(cfg.data)}, nil}
	refs := []string{sha256Digest(cfg.data)}
	for _, l := range layers {
		man.Layers = append(man.Layers, desc{l.mediaType, sha256Digest(l.data), len(l.data)})
		refs = append(refs, sha256Digest(l.data))
	}
	manifest, err := json.Marshal(man)
	if err != nil {
		panic(err)
	}
	return step{"push", func(w *world, m *model) error {
		for _, b := range append(layers, cfg) {
			if err := pushBlob(w, m, repo, b.data, b.mode); err != nil {
				return err
			}
		}
		d := sha256Digest(manifest)
		m.attemptTag(repo, tag, d, refs)
		rec := w.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, manifest,
			map[string]string{"Content-Type": man.MediaType})
		if rec.Code != http.StatusCreated {
			return fmt.Errorf("PUT manifest %s:%s: %w", repo, tag, statusErr(rec))
		}
		if got := rec.Header().Get("Docker-Content-Digest"); got != d {
			return fmt.Errorf("PUT manifest %s:%s: digest %s, want %s", repo, tag, got, d)
		}
		m.ackTag(repo, tag, d)
		return nil
	}}
}

// pushBlob uploads data into repo through the HTTP handler: mode 0 is a
// monolithic POST, 1 a POST then a PUT with the body, 2 a POST, PATCHes
// of random sizes, and a PUT.
func pushBlob(w *world, m *model, repo string, data []byte, mode int) error {
	d := sha256Digest(data)
	l := link{repo, d}
	m.attemptLink(l)
	if err := upload(w, repo, d, data, mode); err != nil {
		return err
	}
	m.ackLink(l)
	return nil
}

func upload(w *world, repo, d string, data []byte, mode int) error {
	base := "/v2/" + repo + "/blobs/uploads/"
	if mode == 0 {
		rec := w.do(http.MethodPost, base+"?digest="+d, data, nil)
		if rec.Code != http.StatusCreated {
			return fmt.Errorf("POST %s monolithic: %w", repo, statusErr(rec))
		}
		return nil
	}
	rec := w.do(http.MethodPost, base, nil, nil)
	if rec.Code != http.StatusAccepted {
		return fmt.Errorf("POST %s: %w", repo, statusErr(rec))
	}
	loc := rec.Header().Get("Location")
	body := data
	if mode == 2 {
		// Three PATCHes at most, then the PUT with no body.
		for off, n := 0, 0; off < len(data); off += n {
			n = min(len(data)-off, 1+len(data)/3)
			rec := w.do(http.MethodPatch, loc, data[off:off+n],
				map[string]string{"Content-Range": fmt.Sprintf("%d-%d", off, off+n-1)})
			if rec.Code != http.StatusAccepted {
				return fmt.Errorf("PATCH %s: %w", loc, statusErr(rec))
			}
			loc = rec.Header().Get("Location")
		}
		body = nil
	}
	rec = w.do(http.MethodPut, loc+"?digest="+d, body, nil)
	if rec.Code != http.StatusCreated {
		return fmt.Errorf("PUT %s: %w", loc, statusErr(rec))
	}
	return nil
}

func statusErr(rec *httptest.ResponseRecorder) error {
	return &errStatus{status: rec.Code, body: rec.Body.Bytes()}
}
