package scan

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Feed generations. Every import that changes the advisories moves the
// feed to its next generation and records, under chg/<generation>, the
// packages whose advisories changed. A report matched at generation g is
// what a match at a later generation would give unless one of the
// generations after g changed a package it holds: so a feed update needs
// matching again only the images holding a changed package, and the
// others keep their reports, now valid for the new feed.

const (
	keyChanges = "chg/" // chg/<generation, 8 bytes BE> -> Changes JSON
	// keepChanges is how many generations' changes are kept; a report
	// older than that is matched again.
	keepChanges = 1024
)

// Changes is what one feed generation changed.
type Changes struct {
	// All: anything may have changed (an import cut off by a crash).
	All  bool         `json:"all,omitempty"`
	Keys []PackageKey `json:"keys,omitempty"`
}

func changesKey(gen uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(keyChanges), gen)
}

func setChanges(b *Batch, gen uint64, ch Changes) error {
	v, err := json.Marshal(ch)
	if err != nil {
		return fmt.Errorf("scan: encoding changes: %w", err)
	}
	b.Set(changesKey(gen), v)
	return nil
}

// pruneChanges drops the record of the generation that falls out of the
// kept window when gen is written.
func pruneChanges(b *Batch, gen uint64) {
	if gen > keepChanges {
		b.Delete(changesKey(gen - keepChanges))
	}
}

// Importing reports whether an import is writing records (or was cut
// off by a crash and not yet recovered): matches made meanwhile may see
// some of its records and not others.
func (db *DB) Importing(ctx context.Context) (bool, error) {
	_, err := db.kv.Get([]byte(keyImporting))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RecoverImport finishes the record of an import cut off by a crash: its
// records may be partly written, so the feed moves to a generation that
// changed everything (every report is matched again). A no-op without
// such an import. Call it when no import runs (at start).
func (db *DB) RecoverImport(ctx context.Context) error {
	cut, err := db.Importing(ctx)
	if err != nil || !cut {
		return err
	}
	return db.writeFeed(ctx, time.Time{}, &Changes{All: true})
}

// Fresh reports whether report r, matched at the generation r.Feed names,
// is what a match against the feed as it is now would give, and returns
// the feed as it is now. It reads no layer and matches nothing: it checks
// the packages of the generations since r's against r's packages (which
// the caller fills in: CachedReport leaves them out). While
// an import is writing, a report of the generation before it is fresh
// (for that generation: the feed the import has not finished).
func (db *DB) Fresh(ctx context.Context, r *Report) (FeedInfo, bool, error) {
	cur, err := db.Feed(ctx)
	if err != nil {
		return cur, false, err
	}
	if r.Feed.Generation == cur.Generation {
		return cur, true, nil
	}
	if r.Feed.Generation > cur.Generation || cur.Generation-r.Feed.Generation > keepChanges {
		return cur, false, nil
	}
	have := map[PackageKey]bool{}
	for i := range r.Packages {
		p := &r.Packages[i]
		have[PackageKey{Ecosystem: lookupEcosystem(p), Name: lookupName(p)}] = true
	}
	for g := r.Feed.Generation + 1; g <= cur.Generation; g++ {
		v, err := db.kv.Get(changesKey(g))
		if errors.Is(err, ErrNotFound) {
			return cur, false, nil
		}
		if err != nil {
			return cur, false, err
		}
		var ch Changes
		if err := json.Unmarshal(v, &ch); err != nil {
			return cur, false, fmt.Errorf("scan: changes of generation %d: %w", g, err)
		}
		if ch.All {
			return cur, false, nil
		}
		for _, k := range ch.Keys {
			if touches(k, have) {
				return cur, false, nil
			}
		}
	}
	return cur, true, nil
}

// touches reports whether an advisory naming k can match a package whose
// lookup key (see lookupEcosystem, lookupName) is in have. A Go record
// naming a package path matches the modules above it.
func touches(k PackageKey, have map[PackageKey]bool) bool {
	eco := k.Ecosystem
	switch eco {
	case EcosystemDebian, EcosystemUbuntu:
		eco = "dpkg"
	case EcosystemAlpine:
		eco = "apk"
	}
	name := k.Name
	for {
		if have[PackageKey{Ecosystem: eco, Name: name}] {
			return true
		}
		i := strings.LastIndex(name, "/")
		if eco != EcosystemGo || i < 0 {
			return false
		}
		name = name[:i]
	}
}
