package scan

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The scan queue: layers waiting for their inventory, kept in the KV so
// that a restart loses none. A q/ key holds the entry, its qw/ key orders
// the queue by when it is due (the oldest first; a layer whose analysis
// failed only after its backoff). PutInventory takes a layer off the
// queue in the batch that stores its inventory. A layer whose analysis
// keeps failing is abandoned: its qf/ key says why, and reports of images
// holding it say so.

const (
	keyQueue     = "q/"  // q/<layer> -> QueueEntry JSON
	keySchedule  = "qw/" // qw/<due, unix ns, 8 bytes BE><layer> -> ""
	keyAbandoned = "qf/" // qf/<layer> -> Abandoned JSON
)

// QueueEntry is a layer waiting to be analyzed.
type QueueEntry struct {
	Layer     string    `json:"-"`
	Queued    time.Time `json:"queued"`
	Due       time.Time `json:"due"`
	Attempts  int       `json:"attempts,omitempty"` // failed attempts so far
	LastError string    `json:"last_error,omitempty"`
}

// Abandoned is a layer whose analysis was given up.
type Abandoned struct {
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	At        time.Time `json:"at"`
}

func queueKey(layer string) []byte     { return []byte(keyQueue + layer) }
func abandonedKey(layer string) []byte { return []byte(keyAbandoned + layer) }
func scheduleKey(due time.Time, layer string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(keySchedule), uint64(due.UnixNano())), layer...)
}

// Queued returns a layer's queue entry; false if it is not queued.
func (db *DB) Queued(ctx context.Context, layer string) (QueueEntry, bool, error) {
	var e QueueEntry
	v, err := db.kv.Get(queueKey(layer))
	if errors.Is(err, ErrNotFound) {
		return e, false, nil
	}
	if err != nil {
		return e, false, err
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return e, false, fmt.Errorf("scan: queue entry of %s: %w", layer, err)
	}
	e.Layer = layer
	return e, true, nil
}

// AbandonedLayer returns why a layer's analysis was given up; false if it
// was not.
func (db *DB) AbandonedLayer(ctx context.Context, layer string) (Abandoned, bool, error) {
	var a Abandoned
	v, err := db.kv.Get(abandonedKey(layer))
	if errors.Is(err, ErrNotFound) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(v, &a); err != nil {
		return a, false, fmt.Errorf("scan: abandoned layer %s: %w", layer, err)
	}
	return a, true, nil
}

// Enqueue queues the layers that have no inventory (by the current
// analyzers) and are not queued, due now; a layer given up on before is
// queued again (what failed may have been passing). It returns how many
// it queued.
func (db *DB) Enqueue(ctx context.Context, layers []string, now time.Time) (int, error) {
	var b Batch
	n := 0
	seen := map[string]bool{}
	for _, l := range layers {
		if seen[l] {
			continue
		}
		seen[l] = true
		if err := checkLayerKey(l); err != nil {
			return n, err
		}
		if _, ok, err := db.Inventory(ctx, l); err != nil || ok {
			if err != nil {
				return n, err
			}
			continue
		}
		if _, ok, err := db.Queued(ctx, l); err != nil || ok {
			if err != nil {
				return n, err
			}
			continue
		}
		now := now.UTC()
		if err := putEntry(&b, QueueEntry{Layer: l, Queued: now, Due: now}); err != nil {
			return n, err
		}
		b.Delete(abandonedKey(l))
		n++
	}
	if b.Len() == 0 {
		return 0, nil
	}
	return n, db.kv.Apply(&b)
}

func putEntry(b *Batch, e QueueEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("scan: encoding queue entry: %w", err)
	}
	b.Set(queueKey(e.Layer), v)
	b.Set(scheduleKey(e.Due, e.Layer), nil)
	return nil
}

// dequeue adds to b the deletion of layer's queue keys, if queued.
func (db *DB) dequeue(ctx context.Context, b *Batch, layer string) error {
	e, ok, err := db.Queued(ctx, layer)
	if err != nil || !ok {
		return err
	}
	b.Delete(queueKey(layer))
	b.Delete(scheduleKey(e.Due, layer))
	return nil
}

// Dequeue takes a layer off the queue (its blob is gone).
func (db *DB) Dequeue(ctx context.Context, layer string) error {
	var b Batch
	if err := db.dequeue(ctx, &b, layer); err != nil {
		return err
	}
	b.Delete(abandonedKey(layer))
	return db.kv.Apply(&b)
}

// Due returns up to n queue entries due at now, the earliest first, and
// when the next entry not due yet will be (zero if none).
func (db *DB) Due(ctx context.Context, now time.Time, n int) ([]QueueEntry, time.Time, error) {
	var (
		out  []QueueEntry
		next time.Time
	)
	err := db.kv.Scan(ctx, []byte(keySchedule), func(k, _ []byte) error {
		if len(k) < len(keySchedule)+8 {
			return fmt.Errorf("scan: bad schedule key %q", k)
		}
		due := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(keySchedule):]))).UTC()
		if due.After(now) {
			next = due
			return errStop
		}
		if len(out) == n {
			return errStop
		}
		layer := string(k[len(keySchedule)+8:])
		e, ok, err := db.Queued(ctx, layer)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, e)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, next, err
}

var errStop = errors.New("stop")

// QueueLength counts the layers queued.
func (db *DB) QueueLength(ctx context.Context) (int, error) {
	n := 0
	err := db.kv.Scan(ctx, []byte(keyQueue), func(_, _ []byte) error { n++; return nil })
	return n, err
}

// Reschedule moves a queued layer's next attempt to due; failed (with
// cause) counts it as a failed attempt. It returns the failed attempts so
// far; 0 if the layer is no longer queued.
func (db *DB) Reschedule(ctx context.Context, layer string, due time.Time, failed bool, cause string) (int, error) {
	e, ok, err := db.Queued(ctx, layer)
	if err != nil || !ok {
		return 0, err
	}
	var b Batch
	b.Delete(scheduleKey(e.Due, layer))
	e.Due = due.UTC()
	if failed {
		e.Attempts++
		e.LastError = truncate(cause, 1000)
	}
	if err := putEntry(&b, e); err != nil {
		return 0, err
	}
	return e.Attempts, db.kv.Apply(&b)
}

// Abandon takes a layer off the queue after its analysis failed for the
// last time, recording why.
func (db *DB) Abandon(ctx context.Context, layer, cause string, attempts int, now time.Time) error {
	var b Batch
	if err := db.dequeue(ctx, &b, layer); err != nil {
		return err
	}
	v, err := json.Marshal(Abandoned{Attempts: attempts, LastError: truncate(cause, 1000), At: now.UTC()})
	if err != nil {
		return err
	}
	b.Set(abandonedKey(layer), v)
	return db.kv.Apply(&b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
