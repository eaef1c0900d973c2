package refgraph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// The conversion queue: blobs received as files (KindPending) or stored
// opaque that may be layers, waiting for the background converter to chunk
// them, split if they are layers. A q/ key is set in the batch that
// commits the blob, so a crash loses no entry, and removed in the batch
// that converts it (or gives up on it). Its w/ key orders the queue by the
// time the entry is due: the oldest first, and an entry whose conversion
// failed only after its backoff (ConversionFailed). An entry that keeps
// failing is abandoned (AbandonConversion): the blob stays as it is (a
// pending blob is then served from its file) and a k/ key records why.

const (
	prefixQueue    = "q/" // q/<digest> -> queueValue
	prefixSchedule = "w/" // w/<due, unix ns, 8 bytes big endian><digest> -> empty
	prefixFailed   = "k/" // k/<digest> -> failedValue: conversion abandoned
)

func queueKey(d digest.Digest) []byte  { return []byte(prefixQueue + string(d)) }
func failedKey(d digest.Digest) []byte { return []byte(prefixFailed + string(d)) }

func scheduleKey(due time.Time, d digest.Digest) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefixSchedule), uint64(due.UnixNano()))
	return append(k, d...)
}

type queueValue struct {
	Queued    time.Time `json:"t"`
	Attempts  int       `json:"n,omitempty"`
	LastError string    `json:"e,omitempty"`
	// Due is when the entry may be tried (its w/ key); zero in entries
	// written before schema version 2, which were due at Queued.
	Due time.Time `json:"d,omitzero"`
}

func (q queueValue) due() time.Time {
	if q.Due.IsZero() {
		return q.Queued
	}
	return q.Due
}

type failedValue struct {
	Attempts  int       `json:"n"`
	LastError string    `json:"e"`
	At        time.Time `json:"t"`
}

// ErrNotOpaque means a blob to convert is no longer stored opaque.
var ErrNotOpaque = errors.New("refgraph: blob is not opaque")

// CommitPending indexes blob d, received and fsynced in a local file but
// not chunked yet (KindPending), links it into repo and queues it for the
// converter, in one batch. If d is indexed already it is only linked: the
// caller then drops its file.
func (g *Graph) CommitPending(repo string, d digest.Digest, size int64) (created bool, err error) {
	err = g.update(func(t *txn) error {
		exists, err := t.has(blobKey(d))
		if err != nil {
			return err
		}
		if !exists {
			created = true
			if err := t.set(blobKey(d), blobValue{size: size, kind: KindPending}.encode()); err != nil {
				return err
			}
			t.stats.Blobs++
			t.stats.LogicalBytes += size
			t.stats.PendingBytes += size
			if err := t.enqueue(d); err != nil {
				return err
			}
		}
		return t.linkBlob(repo, d)
	})
	return created, err
}

func (t *txn) enqueue(d digest.Digest) error {
	now := t.now.UTC()
	v, err := json.Marshal(queueValue{Queued: now, Due: now})
	if err != nil {
		return err
	}
	t.stats.PendingConversions++
	if err := t.set(scheduleKey(now, d), nil); err != nil {
		return err
	}
	return t.set(queueKey(d), v)
}

// queued returns d's queue entry; ok=false if d is not queued.
func (t *txn) queued(d digest.Digest) (q queueValue, ok bool, err error) {
	v, err := t.get(queueKey(d))
	if errors.Is(err, ErrNotFound) {
		return q, false, nil
	}
	if err != nil {
		return q, false, err
	}
	if err := json.Unmarshal(v, &q); err != nil {
		return q, false, fmt.Errorf("refgraph: queue entry of %s: %w", d, err)
	}
	return q, true, nil
}

// dequeue takes d off the queue, and forgets an abandoned conversion of it.
func (t *txn) dequeue(d digest.Digest) error {
	if err := t.forgetFailed(d); err != nil {
		return err
	}
	q, ok, err := t.queued(d)
	if err != nil || !ok {
		return err
	}
	t.stats.PendingConversions--
	if err := t.del(scheduleKey(q.due(), d)); err != nil {
		return err
	}
	return t.del(queueKey(d))
}

func (t *txn) forgetFailed(d digest.Digest) error {
	ok, err := t.has(failedKey(d))
	if err != nil || !ok {
		return err
	}
	t.stats.FailedConversions--
	return t.del(failedKey(d))
}

// QueueEntry is a blob waiting for the converter.
type QueueEntry struct {
	Digest    digest.Digest `json:"digest"`
	Queued    time.Time     `json:"queued"`
	Due       time.Time     `json:"due"`
	Attempts  int           `json:"attempts"`             // failed attempts so far
	LastError string        `json:"last_error,omitempty"` // of the last failed attempt
}

// Queue calls fn for each queued blob, the earliest due first.
func (g *Graph) Queue(fn func(QueueEntry) error) error {
	return g.scan([]byte(prefixSchedule), "", func(k, _ []byte) (bool, error) {
		e, err := g.queueEntry(k)
		if err != nil {
			return false, err
		}
		return true, fn(e)
	})
}

// queueEntry reads the queue entry a w/ key schedules.
func (g *Graph) queueEntry(k []byte) (QueueEntry, error) {
	if len(k) < len(prefixSchedule)+8 {
		return QueueEntry{}, fmt.Errorf("refgraph: bad queue key %q", k)
	}
	d := digest.Digest(k[len(prefixSchedule)+8:])
	v, err := g.get(queueKey(d))
	if err != nil {
		return QueueEntry{}, fmt.Errorf("refgraph: queue entry of %s: %w", d, err)
	}
	var q queueValue
	if err := json.Unmarshal(v, &q); err != nil {
		return QueueEntry{}, fmt.Errorf("refgraph: queue entry of %s: %w", d, err)
	}
	return QueueEntry{Digest: d, Queued: q.Queued, Due: q.due(), Attempts: q.Attempts, LastError: q.LastError}, nil
}

// Queued returns up to n queued blobs, the earliest due first, whether due
// yet or not.
func (g *Graph) Queued(n int) ([]digest.Digest, error) {
	var out []digest.Digest
	err := g.Queue(func(e QueueEntry) error {
		if len(out) == n {
			return errStop
		}
		out = append(out, e.Digest)
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}

var errStop = errors.New("stop")

// DueConversions returns up to n queue entries due at now, the earliest
// first, and when the next entry not due yet will be (zero if none).
func (g *Graph) DueConversions(now time.Time, n int) ([]QueueEntry, time.Time, error) {
	var (
		out  []QueueEntry
		next time.Time
	)
	err := g.Queue(func(e QueueEntry) error {
		if e.Due.After(now) {
			next = e.Due
			return errStop
		}
		if len(out) == n {
			return errStop
		}
		out = append(out, e)
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, next, err
}

// ConversionFailed records a failed attempt to convert d and schedules the
// next one at retry. It returns the attempts so far; 0 if d is no longer
// queued (converted or deleted meanwhile).
func (g *Graph) ConversionFailed(d digest.Digest, cause string, retry time.Time) (int, error) {
	attempts := 0
	err := g.update(func(t *txn) error {
		q, ok, err := t.queued(d)
		if err != nil || !ok {
			return err
		}
		if err := t.del(scheduleKey(q.due(), d)); err != nil {
			return err
		}
		q.Attempts++
		q.LastError, q.Due = truncate(cause, 1000), retry.UTC()
		attempts = q.Attempts
		v, err := json.Marshal(q)
		if err != nil {
			return err
		}
		if err := t.set(scheduleKey(q.Due, d), nil); err != nil {
			return err
		}
		return t.set(queueKey(d), v)
	})
	return attempts, err
}

// AbandonConversion takes d off the queue after its conversion failed for
// the last time: the blob stays as it is (a pending blob is served from
// its file) and FailedConversions lists it with why.
func (g *Graph) AbandonConversion(d digest.Digest, cause string) error {
	return g.update(func(t *txn) error {
		q, ok, err := t.queued(d)
		if err != nil || !ok {
			return err
		}
		if err := t.dequeue(d); err != nil {
			return err
		}
		v, err := json.Marshal(failedValue{Attempts: q.Attempts + 1, LastError: truncate(cause, 1000), At: t.now.UTC()})
		if err != nil {
			return err
		}
		t.stats.FailedConversions++
		return t.set(failedKey(d), v)
	})
}

// FailedConversion is a blob whose conversion was abandoned.
type FailedConversion struct {
	Digest    digest.Digest `json:"digest"`
	Attempts  int           `json:"attempts"`
	LastError string        `json:"last_error"`
	At        time.Time     `json:"at"`
}

// FailedConversions calls fn for each blob whose conversion was abandoned.
func (g *Graph) FailedConversions(fn func(FailedConversion) error) error {
	return g.scan([]byte(prefixFailed), "", func(k, v []byte) (bool, error) {
		var f failedValue
		if err := json.Unmarshal(v, &f); err != nil {
			return false, fmt.Errorf("refgraph: %q: %w", k, err)
		}
		return true, fn(FailedConversion{Digest: digest.Digest(k[len(prefixFailed):]), Attempts: f.Attempts, LastError: f.LastError, At: f.At})
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ConvertBlob stores pending or opaque blob d as chunks: chunks is what
// the converter's chunk store Writes returned, layout (nil: opaque) says
// how they make the blob (a layer's header stream first, then its content
// stream). In one batch the new chunks gain a reference, the old ones (of
// an opaque blob) lose one, and the blob leaves the queue. ErrNotFound or
// ErrNotOpaque (already converted): nothing changed but the queue entry,
// and the written chunks count as dead pack bytes.
func (g *Graph) ConvertBlob(d digest.Digest, chunks []chunkstore.Chunk, layout *Layout) error {
	var stale error
	err := g.update(func(t *txn) error {
		if err := t.addWritten(chunks); err != nil {
			return err
		}
		if err := t.dequeue(d); err != nil {
			return err
		}
		v, err := t.get(blobKey(d))
		if errors.Is(err, ErrNotFound) {
			stale = fmt.Errorf("blob %s: %w", d, ErrNotFound)
			return nil
		}
		if err != nil {
			return err
		}
		bv, err := decodeBlob(v)
		if err != nil {
			return err
		}
		if bv.kind == KindLayer {
			stale = fmt.Errorf("blob %s: %w", d, ErrNotOpaque)
			return nil
		}
		refs := make([]ChunkRef, len(chunks))
		for i, c := range chunks {
			refs[i] = ChunkRef{ID: c.ID, RawLen: c.RawLen}
			if err := t.addChunkRef(c.ID, 1, c.Loc); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
		}
		for _, c := range bv.chunks {
			if err := t.addChunkRef(c.ID, -1, nil); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
		}
		if bv.kind == KindPending {
			t.stats.PendingBytes -= bv.size
		}
		bv.kind, bv.chunks, bv.layout = KindOpaque, refs, nil
		if layout != nil {
			bv.kind, bv.layout = KindLayer, layout
			t.stats.ConvertedBlobs++
			if err := t.countEncoding(layout, 1); err != nil {
				return err
			}
		}
		return t.set(blobKey(d), bv.encode())
	})
	if err != nil {
		return err
	}
	return stale
}

// GiveUpConversion takes an opaque blob d off the queue, keeping it as it
// is; written are chunks the attempt stored, which count as dead pack
// bytes. (A pending blob must be converted, at least to opaque.)
func (g *Graph) GiveUpConversion(d digest.Digest, written []chunkstore.Chunk) error {
	return g.update(func(t *txn) error {
		if err := t.addWritten(written); err != nil {
			return err
		}
		return t.dequeue(d)
	})
}

// RecordWritten counts chunks a Write stored that no blob will reference
// (a conversion that did not pan out) as dead bytes of their packs.
func (g *Graph) RecordWritten(written []chunkstore.Chunk) error {
	return g.update(func(t *txn) error { return t.addWritten(written) })
}

// prefixEncoding keys count split layers per encoder output class, so
// that a server can refuse to start without an encoder its store needs.
const prefixEncoding = "e/"

// encodingClass names a recipe's encoder output class ("encoder class"),
// read from the fields of the assembler's JSON recipe that name it; ""
// for an uncompressed layer.
func encodingClass(l *Layout) (string, error) {
	var e struct{ Encoder, Version string }
	if err := json.Unmarshal(l.Encoding, &e); err != nil {
		return "", fmt.Errorf("refgraph: unreadable recipe %q: %w", l.Encoding, err)
	}
	if e.Encoder == "" {
		return "", nil
	}
	return e.Encoder + " " + e.Version, nil
}

// countEncoding adds delta to the count of l's encoder class.
func (t *txn) countEncoding(l *Layout, delta int64) error {
	class, err := encodingClass(l)
	if err != nil || class == "" {
		return err
	}
	key := []byte(prefixEncoding + class)
	var n int64
	switch v, err := t.get(key); {
	case err == nil && len(v) == 8:
		n = int64(binary.BigEndian.Uint64(v))
	case err == nil:
		return fmt.Errorf("refgraph: bad count at %q", key)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if n += delta; n <= 0 {
		return t.del(key)
	}
	return t.set(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// Encodings returns, per encoder output class ("encoder class"), how many
// split layers need it to be pulled.
func (g *Graph) Encodings() (map[string]int64, error) {
	out := map[string]int64{}
	prefix := []byte(prefixEncoding)
	err := g.scan(prefix, "", func(k, v []byte) (bool, error) {
		if len(v) != 8 {
			return false, fmt.Errorf("refgraph: bad count at %q", k)
		}
		out[string(k[len(prefix):])] = int64(binary.BigEndian.Uint64(v))
		return true, nil
	})
	return out, err
}
