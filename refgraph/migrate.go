package refgraph

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

// Schema migrations, in order: migrations[i] turns version i+1 into i+2.
// Each runs in one synced batch that also writes the new version, so a
// crash leaves the old version or the new one. Open runs those a data dir
// needs; an index newer than this build is refused.
var migrations = []func(b *pebble.Batch) error{
	migrateQueueSchedule, // 1 -> 2
}

// migrate brings the index from version v to schemaVersion.
func (g *Graph) migrate(v string) error {
	from, err := strconv.Atoi(v)
	if err != nil || from < 1 {
		return fmt.Errorf("refgraph: index schema version %q is not one this build knows", v)
	}
	to, _ := strconv.Atoi(schemaVersion)
	if from > to {
		return fmt.Errorf("refgraph: index schema version %d is newer than this build's %d: run a newer chunkyard", from, to)
	}
	for ; from < to; from++ {
		b := g.db.NewIndexedBatch()
		err := migrations[from-1](b)
		if err == nil {
			err = b.Set([]byte(keyVersion), []byte(strconv.Itoa(from+1)), nil)
		}
		if err == nil {
			err = b.Commit(pebble.Sync)
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("refgraph: migrating the index from schema version %d to %d: %w", from, from+1, err)
		}
		g.log.Info("migrated the index", "from_version", from, "to_version", from+1)
	}
	return nil
}

// migrateQueueSchedule (1 -> 2) orders the conversion queue by due time:
// every q/ entry gets its w/ key, due when it was queued.
func migrateQueueSchedule(b *pebble.Batch) error {
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixQueue), UpperBound: prefixEnd([]byte(prefixQueue))})
	if err != nil {
		return err
	}
	type entry struct {
		d digest.Digest
		q queueValue
	}
	var all []entry
	for it.First(); it.Valid(); it.Next() {
		var q queueValue
		if err := json.Unmarshal(it.Value(), &q); err != nil {
			it.Close()
			return fmt.Errorf("queue entry %q: %w", it.Key(), err)
		}
		all = append(all, entry{digest.Digest(it.Key()[len(prefixQueue):]), q})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	for _, e := range all {
		if err := b.Set(scheduleKey(e.q.due(), e.d), nil, nil); err != nil {
			return err
		}
	}
	return nil
}
