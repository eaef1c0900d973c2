package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Images: what a server scans is an image (a manifest's layers, bottom
// first); its record, the reverse index from a layer to the images
// holding it (so that a feed update finds the images to match again)
// and its last report, all keyed by manifest digest and dropped with the
// manifest's blob.

const (
	keyImage      = "img/" // img/<manifest> -> ImageRecord JSON
	keyImageLayer = "lim/" // lim/<layer>\x00<manifest> -> ""
	keyReport     = "rep/" // rep/<manifest> -> Report JSON, matched at its Feed.Generation
	keyMark       = "meta/done/"
)

// ImageRecord is what a scan needs of an image manifest.
type ImageRecord struct {
	// Layers are the digests of the layers to read, bottom first.
	Layers []string `json:"layers"`
	// Notes say what of the manifest is not read (a layer that is not a
	// tar, a foreign layer the registry does not hold).
	Notes []Note `json:"notes,omitempty"`
}

func imageLayerKey(layer, manifest string) []byte {
	return []byte(keyImageLayer + layer + "\x00" + manifest)
}

// PutImage records an image manifest's layers.
func (db *DB) PutImage(ctx context.Context, manifest string, rec ImageRecord) error {
	if err := checkLayerKey(manifest); err != nil {
		return err
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("scan: encoding image record: %w", err)
	}
	var b Batch
	b.Set([]byte(keyImage+manifest), v)
	for _, l := range rec.Layers {
		if err := checkLayerKey(l); err != nil {
			return err
		}
		b.Set(imageLayerKey(l, manifest), nil)
	}
	return db.kv.Apply(&b)
}

// Image returns an image's record; false if it has none.
func (db *DB) Image(ctx context.Context, manifest string) (*ImageRecord, bool, error) {
	v, err := db.kv.Get([]byte(keyImage + manifest))
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var rec ImageRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, false, fmt.Errorf("scan: image record of %s: %w", manifest, err)
	}
	return &rec, true, nil
}

// Images calls fn with each image recorded, in digest order.
func (db *DB) Images(ctx context.Context, fn func(manifest string) error) error {
	return db.kv.Scan(ctx, []byte(keyImage), func(k, _ []byte) error {
		return fn(string(k[len(keyImage):]))
	})
}

// ImagesUsing returns the images holding a layer.
func (db *DB) ImagesUsing(ctx context.Context, layer string) ([]string, error) {
	var out []string
	prefix := []byte(keyImageLayer + layer + "\x00")
	err := db.kv.Scan(ctx, prefix, func(k, _ []byte) error {
		out = append(out, string(k[len(prefix):]))
		return nil
	})
	return out, err
}

// DeleteImage drops an image's record, its reverse index entries and its
// report: for GC, when the manifest's blob goes.
func (db *DB) DeleteImage(ctx context.Context, manifest string) error {
	rec, ok, err := db.Image(ctx, manifest)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	var b Batch
	for _, l := range rec.Layers {
		b.Delete(imageLayerKey(l, manifest))
	}
	b.Delete([]byte(keyImage + manifest))
	b.Delete([]byte(keyReport + manifest))
	return db.kv.Apply(&b)
}

// PutReport keeps an image's report; r.Feed says which generation it was
// matched at. Its packages are not kept (they are the union of the
// layers' inventories, which are): a report kept is its findings, notes
// and statistics, whose size follows the findings, not the image.
func (db *DB) PutReport(ctx context.Context, manifest string, r *Report) error {
	return db.PutReports(ctx, map[string]*Report{manifest: r})
}

// PutReports keeps many images' reports (by manifest digest) in one
// batch.
func (db *DB) PutReports(ctx context.Context, reports map[string]*Report) error {
	var b Batch
	for m, r := range reports {
		kept := *r
		kept.Packages = nil
		v, err := json.Marshal(&kept)
		if err != nil {
			return fmt.Errorf("scan: encoding report: %w", err)
		}
		b.Set([]byte(keyReport+m), v)
	}
	if b.Len() == 0 {
		return nil
	}
	return db.kv.Apply(&b)
}

// CachedReport returns the report kept for an image, without its
// packages (Union of the layers gives them); false if none. Whether it is
// still valid for the feed is Fresh's question.
func (db *DB) CachedReport(ctx context.Context, manifest string) (*Report, bool, error) {
	v, err := db.kv.Get([]byte(keyReport + manifest))
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var r Report
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, false, fmt.Errorf("scan: report of %s: %w", manifest, err)
	}
	return &r, true, nil
}

// ForgetLayer drops everything kept for a layer (its inventories of every
// analyzer version with their reverse index entries, its queue entry),
// in one batch: for GC, when the layer's blob goes.
func (db *DB) ForgetLayer(ctx context.Context, layer string) error {
	if err := checkLayerKey(layer); err != nil {
		return err
	}
	var b Batch
	err := db.kv.Scan(ctx, []byte(keyInventory+layer+"/"), func(k, v []byte) error {
		b.Delete(k)
		var inv Inventory
		if json.Unmarshal(v, &inv) == nil {
			for _, pk := range packageLayerKeys(layer, &inv) {
				b.Delete(pk)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := db.dequeue(ctx, &b, layer); err != nil {
		return err
	}
	if _, gaveUp, err := db.AbandonedLayer(ctx, layer); err != nil || gaveUp {
		if err != nil {
			return err
		}
		b.Delete(abandonedKey(layer))
	}
	if b.Len() == 0 {
		return nil
	}
	return db.kv.Apply(&b)
}

// Marked reports whether a one-time job of the caller's (named name) is
// recorded as done; Mark records it.
func (db *DB) Marked(ctx context.Context, name string) (bool, error) {
	_, err := db.kv.Get([]byte(keyMark + name))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Mark records a one-time job as done.
func (db *DB) Mark(ctx context.Context, name string) error {
	var b Batch
	b.Set([]byte(keyMark+name), nil)
	return db.kv.Apply(&b)
}

// Layers calls fn with each layer that has an inventory (of any analyzer
// version) or a queue entry, in digest order (one with both, twice).
func (db *DB) Layers(ctx context.Context, fn func(layer string) error) error {
	last := ""
	err := db.kv.Scan(ctx, []byte(keyInventory), func(k, _ []byte) error {
		rest := string(k[len(keyInventory):])
		i := strings.LastIndexByte(rest, '/')
		if i < 0 || rest[:i] == last {
			return nil
		}
		last = rest[:i]
		return fn(last)
	})
	if err != nil {
		return err
	}
	return db.kv.Scan(ctx, []byte(keyQueue), func(k, _ []byte) error {
		return fn(string(k[len(keyQueue):]))
	})
}

// ImageLayers reads the inventories of an image's layers: done holds one
// per layer, bottom first (nil for a layer without one), waiting the
// layers queued or not analyzed yet, failed the layers given up on.
func (db *DB) ImageLayers(ctx context.Context, rec *ImageRecord) (done []LayerInventory, waiting []string, failed map[string]Abandoned, err error) {
	return db.ImageLayersCached(ctx, rec, nil)
}

// ImageLayersCached is ImageLayers keeping the inventories it decodes in
// cache (if not nil; at most maxCachedInventories), for the many images of a re-match
// that share layers. The inventories are shared: read them only.
func (db *DB) ImageLayersCached(ctx context.Context, rec *ImageRecord, cache map[string]*Inventory) (done []LayerInventory, waiting []string, failed map[string]Abandoned, err error) {
	for _, l := range rec.Layers {
		inv, ok := cache[l]
		if !ok {
			if inv, ok, err = db.Inventory(ctx, l); err != nil {
				return nil, nil, nil, err
			}
			if ok && cache != nil {
				if len(cache) >= maxCachedInventories {
					clear(cache)
				}
				cache[l] = inv
			}
		}
		if ok {
			done = append(done, LayerInventory{Digest: l, Inventory: inv})
			continue
		}
		done = append(done, LayerInventory{Digest: l})
		a, gaveUp, err := db.AbandonedLayer(ctx, l)
		if err != nil {
			return nil, nil, nil, err
		}
		if gaveUp {
			if failed == nil {
				failed = map[string]Abandoned{}
			}
			failed[l] = a
			continue
		}
		waiting = append(waiting, l)
	}
	return done, waiting, failed, nil
}

// maxCachedInventories bounds ImageLayersCached's cache (an inventory of
// a root file system decodes to a few hundred KiB).
const maxCachedInventories = 1024
