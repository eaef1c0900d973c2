package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/scan/osv"
)

// Key schema (under the KV's own prefix; see the package doc):
const (
	keyInventory = "inv/" // inv/<layer digest>/<analyzer version, 4 bytes BE> -> Inventory JSON
	keyPkgLayer  = "pkl/" // pkl/<lookup ecosystem>\x00<name>\x00<layer digest> -> ""
	keyRecord    = "adv/" // adv/<id> -> the record's bytes as imported
	keyAdvisory  = "am/"  // am/<id> -> advisory (what matching needs) JSON
	keyIndex     = "idx/" // idx/<ecosystem>\x00<name>\x00<id> -> ""
	keyFeed      = "meta/feed"
	keyImporting = "meta/importing" // an import is writing records (or was cut off)
)

// DB keeps layers' inventories and the advisory feed in a KV, and matches
// the one against the other.
type DB struct {
	kv KV
}

// NewDB returns a DB over kv.
func NewDB(kv KV) *DB { return &DB{kv: kv} }

func inventoryKey(layer string, version int) []byte {
	k := append([]byte(keyInventory+layer+"/"), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(k[len(k)-4:], uint32(version))
	return k
}

// PutInventory stores a layer's inventory (cache key: layer digest and
// inv.AnalyzerVersion) with the reverse index from the package names it
// holds to the layer, in one batch, which also takes the layer off the
// scan queue.
func (db *DB) PutInventory(ctx context.Context, layer string, inv *Inventory) error {
	if err := checkLayerKey(layer); err != nil {
		return err
	}
	b, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("scan: encoding inventory: %w", err)
	}
	var batch Batch
	batch.Set(inventoryKey(layer, inv.AnalyzerVersion), b)
	for _, k := range packageLayerKeys(layer, inv) {
		batch.Set(k, nil)
	}
	if err := db.dequeue(ctx, &batch, layer); err != nil {
		return err
	}
	batch.Delete(abandonedKey(layer))
	return db.kv.Apply(&batch)
}

// Inventory returns a layer's inventory made by the current analyzers;
// false if there is none (never analyzed, or by other analyzers).
func (db *DB) Inventory(ctx context.Context, layer string) (*Inventory, bool, error) {
	b, err := db.kv.Get(inventoryKey(layer, AnalyzerVersion))
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, false, fmt.Errorf("scan: inventory of %s: %w", layer, err)
	}
	return &inv, true, nil
}

func checkLayerKey(layer string) error {
	if layer == "" || strings.ContainsAny(layer, "/\x00") {
		return fmt.Errorf("scan: bad layer digest %q", layer)
	}
	return nil
}

// lookupEcosystem is the reverse index's ecosystem for a package: OS
// packages by package manager (a layer does not know its distribution).
func lookupEcosystem(p *Package) string {
	switch p.Manager {
	case "dpkg":
		return "dpkg"
	case "apk":
		return "apk"
	}
	return p.Ecosystem
}

// lookupName is the name advisories give a package: the source package
// of an OS package, the PEP 503 form of a Python name.
func lookupName(p *Package) string {
	switch {
	case p.Manager == "dpkg" || p.Manager == "apk":
		if p.Source != "" {
			return p.Source
		}
	case p.Ecosystem == EcosystemPyPI:
		return NormalizePyPI(p.Name)
	}
	return p.Name
}

func packageLayerKeys(layer string, inv *Inventory) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	for i := range inv.Packages {
		p := &inv.Packages[i]
		k := keyPkgLayer + lookupEcosystem(p) + "\x00" + lookupName(p) + "\x00" + layer
		if !seen[k] {
			seen[k] = true
			out = append(out, []byte(k))
		}
	}
	return out
}

// PackageKey names the packages an advisory is about: an OSV ecosystem
// without its release ("Debian", "PyPI") and the name as advisories give
// it (normalised for PyPI).
type PackageKey struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// LayersNaming returns the layers whose inventories hold a package an
// advisory naming k would match: after an import, the layers (and so the
// images) to match again. A Go package path finds the layers holding a
// module that contains it.
func (db *DB) LayersNaming(ctx context.Context, k PackageKey) ([]string, error) {
	ecos := []string{k.Ecosystem}
	switch k.Ecosystem {
	case EcosystemDebian, EcosystemUbuntu:
		ecos = []string{"dpkg"}
	case EcosystemAlpine:
		ecos = []string{"apk"}
	}
	names := []string{k.Name}
	if k.Ecosystem == EcosystemGo {
		for n := k.Name; strings.Contains(n, "/"); {
			n = n[:strings.LastIndex(n, "/")]
			names = append(names, n)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, eco := range ecos {
		for _, n := range names {
			prefix := []byte(keyPkgLayer + eco + "\x00" + n + "\x00")
			err := db.kv.Scan(ctx, prefix, func(key, _ []byte) error {
				l := string(key[len(prefix):])
				if !seen[l] {
					seen[l] = true
					out = append(out, l)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// advisory is what matching needs of a record.
type advisory struct {
	ID         string         `json:"id"`
	Modified   time.Time      `json:"modified"`
	Withdrawn  bool           `json:"withdrawn,omitempty"`
	Aliases    []string       `json:"aliases,omitempty"`
	Summary    string         `json:"summary,omitempty"`
	Severity   []osv.Severity `json:"severity,omitempty"`
	DBSeverity string         `json:"db_severity,omitempty"`
	Affected   []osv.Affected `json:"affected"`
	Hash       string         `json:"hash"` // sha256 of the record's bytes
}

// FeedInfo describes the advisories a DB holds.
type FeedInfo struct {
	// Time is the newest modification time among the records imported:
	// the time of the feed the DB reflects.
	Time time.Time `json:"time"`
	// ImportedAt is when the last import finished.
	ImportedAt time.Time `json:"imported_at"`
	Records    int       `json:"records"`
	Withdrawn  int       `json:"withdrawn"`
	// Generation counts the imports that changed something: a report
	// matched at generation g is still what a match would give now unless
	// a later generation changed a package it holds (see Fresh).
	Generation uint64 `json:"generation"`
}

// Feed returns what the DB knows of its feed.
func (db *DB) Feed(ctx context.Context) (FeedInfo, error) {
	var fi FeedInfo
	b, err := db.kv.Get([]byte(keyFeed))
	if errors.Is(err, ErrNotFound) {
		return fi, nil
	}
	if err != nil {
		return fi, err
	}
	if err := json.Unmarshal(b, &fi); err != nil {
		return fi, fmt.Errorf("scan: feed record: %w", err)
	}
	return fi, nil
}

// ImportStats counts what an import did.
type ImportStats struct {
	Read, Added, Updated, Unchanged, Withdrawn, Bad int
	// BadRecords names the records that did not parse, with why (the
	// first 100).
	BadRecords []string `json:",omitempty"`
	// Changed are the packages named by records added, changed or
	// withdrawn (before and after the change): only images holding one
	// of them need matching again.
	Changed []PackageKey `json:",omitempty"`
}

// Imports. One runs at a time (the caller serialises them). The first
// batch of records an import writes also sets meta/importing; the last
// one writes the feed record with the next generation, the packages the
// import changed under chg/<generation>, and clears meta/importing. An
// import cut off by a crash leaves the marker, and RecoverImport (called
// by the next import, and by a server at start) then records a
// generation that changed everything.

// Import reads OSV records from path (see osv.ReadPath: a JSON file, a
// zip such as all.zip, or a directory, incrementally through its
// modified_id.csv) and stores those that are new or changed. A withdrawn
// record is kept but leaves the index, so it never matches again.
func (db *DB) Import(ctx context.Context, path string) (ImportStats, error) {
	if err := db.RecoverImport(ctx); err != nil {
		return ImportStats{}, err
	}
	im := db.newImporter(ctx)
	err := osv.ReadPath(ctx, path, im.handler())
	return im.finish(err)
}

// ImportZip imports a zip of records such as osv.dev's all.zip.
func (db *DB) ImportZip(ctx context.Context, r io.ReaderAt, size int64) (ImportStats, error) {
	if err := db.RecoverImport(ctx); err != nil {
		return ImportStats{}, err
	}
	im := db.newImporter(ctx)
	err := osv.ReadZip(ctx, r, size, im.handler())
	return im.finish(err)
}

// ImportRecord imports one JSON record.
func (db *DB) ImportRecord(ctx context.Context, data []byte) (ImportStats, error) {
	if err := db.RecoverImport(ctx); err != nil {
		return ImportStats{}, err
	}
	im := db.newImporter(ctx)
	v, err := osv.Parse(data)
	if err != nil {
		return ImportStats{}, err
	}
	err = im.record(osv.Record{Vuln: v, Raw: data, Name: v.ID})
	return im.finish(err)
}

// importer writes records in batches of up to batchRecords.
type importer struct {
	ctx     context.Context
	db      *DB
	batch   Batch
	stats   ImportStats
	changed map[PackageKey]bool
	newest  time.Time
	marked  bool // meta/importing written
}

const batchBytes = 4 << 20

func (db *DB) newImporter(ctx context.Context) *importer {
	return &importer{ctx: ctx, db: db, changed: map[PackageKey]bool{}}
}

func (im *importer) handler() osv.Handler {
	return osv.Handler{
		Record: im.record,
		Bad: func(name string, err error) {
			im.stats.Bad++
			if len(im.stats.BadRecords) < 100 {
				im.stats.BadRecords = append(im.stats.BadRecords, fmt.Sprintf("%s: %v", name, err))
			}
		},
		Need: func(id string, modified time.Time) bool {
			old, err := im.db.advisory(id)
			// Unknown, unreadable, or with a zero time that says nothing:
			// read it.
			return err != nil || old == nil || old.Modified.IsZero() || modified.After(old.Modified)
		},
	}
}

func (db *DB) advisory(id string) (*advisory, error) {
	b, err := db.kv.Get([]byte(keyAdvisory + id))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a advisory
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("scan: advisory %s: %w", id, err)
	}
	return &a, nil
}

func (im *importer) record(r osv.Record) error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	v := r.Vuln
	if strings.ContainsAny(v.ID, "/\x00") {
		im.handler().Bad(r.Name, fmt.Errorf("id %q not usable as a key", v.ID))
		return nil
	}
	im.stats.Read++
	sum := sha256.Sum256(r.Raw)
	a := &advisory{ID: v.ID, Modified: v.Modified, Withdrawn: v.Withdrawn != nil, Aliases: v.Aliases,
		Summary: v.Summary, Severity: v.Severity, DBSeverity: v.DatabaseSeverity(), Hash: hex.EncodeToString(sum[:])}
	for _, af := range v.Affected {
		af.DatabaseSpecific = nil
		af.EcosystemSpecific = nil
		a.Affected = append(a.Affected, af)
	}
	old, err := im.db.advisory(v.ID)
	if err != nil {
		return err
	}
	if old != nil && old.Hash == a.Hash {
		im.stats.Unchanged++
		return nil
	}
	if v.Modified.After(im.newest) {
		im.newest = v.Modified
	}
	switch {
	case old == nil:
		im.stats.Added++
	default:
		im.stats.Updated++
	}
	if a.Withdrawn {
		im.stats.Withdrawn++
	}
	// Index entries: drop the old record's, add the new one's.
	oldKeys, newKeys := indexKeys(old), indexKeys(a)
	for k := range oldKeys {
		if !newKeys[k] {
			im.batch.Delete(indexKey(k, v.ID))
		}
		im.changed[k] = true
	}
	for k := range newKeys {
		im.batch.Set(indexKey(k, v.ID), nil)
		im.changed[k] = true
	}
	enc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("scan: encoding advisory %s: %w", v.ID, err)
	}
	im.batch.Set([]byte(keyAdvisory+v.ID), enc)
	im.batch.Set([]byte(keyRecord+v.ID), r.Raw)
	if im.batch.Size() >= batchBytes {
		return im.flush()
	}
	return nil
}

func (im *importer) flush() error {
	if im.batch.Len() == 0 {
		return nil
	}
	if !im.marked {
		im.batch.Set([]byte(keyImporting), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		im.marked = true
	}
	if err := im.db.kv.Apply(&im.batch); err != nil {
		return err
	}
	im.batch = Batch{}
	return nil
}

// finish writes what is left and the feed record.
func (im *importer) finish(readErr error) (ImportStats, error) {
	for k := range im.changed {
		im.stats.Changed = append(im.stats.Changed, k)
	}
	sort.Slice(im.stats.Changed, func(i, j int) bool {
		a, b := im.stats.Changed[i], im.stats.Changed[j]
		return a.Ecosystem < b.Ecosystem || a.Ecosystem == b.Ecosystem && a.Name < b.Name
	})
	// What was written is recorded even if the read failed (or was
	// cancelled): the feed record must say what the DB holds.
	ctx := context.WithoutCancel(im.ctx)
	err := im.flush()
	if err == nil {
		var ch *Changes
		if len(im.stats.Changed) > 0 || im.marked {
			ch = &Changes{Keys: im.stats.Changed}
		}
		err = im.db.writeFeed(ctx, im.newest, ch)
	}
	if readErr != nil {
		return im.stats, fmt.Errorf("scan: importing advisories: %w", readErr)
	}
	return im.stats, err
}

// writeFeed writes the feed record after an import: the newest record
// time, the counts, and, if anything was written, the next generation
// with what changed (ch; nil: nothing).
func (db *DB) writeFeed(ctx context.Context, newest time.Time, ch *Changes) error {
	fi, err := db.Feed(ctx)
	if err != nil {
		return err
	}
	if newest.After(fi.Time) {
		fi.Time = newest
	}
	fi.ImportedAt = time.Now().UTC()
	// Recount: cheap next to an import, and never drifts.
	fi.Records, fi.Withdrawn = 0, 0
	err = db.kv.Scan(ctx, []byte(keyAdvisory), func(_, v []byte) error {
		fi.Records++
		if bytes.Contains(v, []byte(`"withdrawn":true`)) {
			fi.Withdrawn++
		}
		return nil
	})
	if err != nil {
		return err
	}
	var batch Batch
	if ch != nil {
		fi.Generation++
		if err := setChanges(&batch, fi.Generation, *ch); err != nil {
			return err
		}
		pruneChanges(&batch, fi.Generation)
	}
	b, err := json.Marshal(fi)
	if err != nil {
		return err
	}
	batch.Set([]byte(keyFeed), b)
	batch.Delete([]byte(keyImporting))
	return db.kv.Apply(&batch)
}

// indexKeys are the (ecosystem, name) pairs a record is indexed under;
// none for a withdrawn record.
func indexKeys(a *advisory) map[PackageKey]bool {
	out := map[PackageKey]bool{}
	if a == nil || a.Withdrawn {
		return out
	}
	for _, af := range a.Affected {
		if af.Package.Ecosystem == "" || af.Package.Name == "" {
			continue
		}
		out[advisoryKey(af.Package)] = true
	}
	return out
}

// advisoryKey is the index key of an affected package.
func advisoryKey(p osv.Package) PackageKey {
	eco, _, _ := strings.Cut(p.Ecosystem, ":")
	name := p.Name
	if eco == EcosystemPyPI {
		name = NormalizePyPI(name)
	}
	return PackageKey{Ecosystem: eco, Name: name}
}

func indexKey(k PackageKey, id string) []byte {
	return []byte(keyIndex + k.Ecosystem + "\x00" + k.Name + "\x00" + id)
}

// Record returns a record's bytes as imported.
func (db *DB) Record(ctx context.Context, id string) ([]byte, error) {
	return db.kv.Get([]byte(keyRecord + id))
}
