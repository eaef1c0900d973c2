package refgraph

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// Check's repairs: found while scanning, logged to a file (there may be
// many), applied afterwards in batches under the writer mutex, each
// re-checked against the index as it is then (see CheckWith).

// A fix is one repair. What key, a and b mean depends on the kind.
type fix struct {
	kind byte
	key  []byte
	a, b int64
}

const (
	_              = iota
	fixRepo        // key: repo; add its catalog entry if missing
	fixBlob        // key: digest; refs += a, then stamp z/ if and only if refs are zero
	fixOrphanUnref // key: digest; drop z/ if the blob is not indexed
	fixChunk       // key: chunk ID; refs += a, moving its pack and the counters
	fixPack        // key: pack; live bytes += a, live chunks += b
	fixUsage       // key: repo\x00digest; use count += a (b=1: set to a), then stamp y/ if and only if linked and unused
	fixSchedule    // key: w/ key rest; set it if the queue entry is still due then
	fixUnschedule  // key: w/ key rest; drop it unless a queue entry is due then
	fixEncoding    // key: class; count += a (b=1: set to a)
	fixStats       // key: counters to add (JSON Stats)
)

// fixLog is the file of fixes found by a scan.
type fixLog struct {
	path string
	f    *os.File
	w    *bufio.Writer
	n    int64
	buf  []byte
}

func createFixLog(dir string) (*fixLog, error) {
	path := filepath.Join(dir, "repairs")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &fixLog{path: path, f: f, w: bufio.NewWriter(f)}, nil
}

func (l *fixLog) add(f fix) error {
	l.buf = append(l.buf[:0], f.kind)
	l.buf = binary.AppendUvarint(l.buf, uint64(len(f.key)))
	l.buf = append(l.buf, f.key...)
	l.buf = binary.AppendVarint(l.buf, f.a)
	l.buf = binary.AppendVarint(l.buf, f.b)
	if _, err := l.w.Write(l.buf); err != nil {
		return fmt.Errorf("logging a repair: %w", err)
	}
	l.n++
	return nil
}

func (l *fixLog) close() { l.f.Close() }

// fixReader reads the log back.
type fixReader struct {
	r    *bufio.Reader
	left int64
}

func (l *fixLog) reader() (*fixReader, error) {
	if err := l.w.Flush(); err != nil {
		return nil, err
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return &fixReader{r: bufio.NewReader(l.f), left: l.n}, nil
}

// next returns the next fix; ok=false at the end.
func (r *fixReader) next() (f fix, ok bool, err error) {
	if r.left == 0 {
		return f, false, nil
	}
	r.left--
	if f.kind, err = r.r.ReadByte(); err != nil {
		return f, false, fmt.Errorf("reading the repairs: %w", err)
	}
	n, err := binary.ReadUvarint(r.r)
	if err == nil && n > 1<<20 {
		err = errors.New("bad key length")
	}
	if err == nil {
		f.key = make([]byte, n)
		_, err = io.ReadFull(r.r, f.key)
	}
	if err == nil {
		f.a, err = binary.ReadVarint(r.r)
	}
	if err == nil {
		f.b, err = binary.ReadVarint(r.r)
	}
	if err != nil {
		return f, false, fmt.Errorf("reading the repairs: %w", err)
	}
	return f, true, nil
}

// repair applies the logged fixes, as many to a batch as GC's bulk
// deletions put in one (maxBatchWrites, maxBatchHold).
func (c *checker) repair() error {
	rd, err := c.fixes.reader()
	if err != nil {
		return err
	}
	for done := false; !done; {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		var applied, skipped int64
		err := c.g.update(func(t *txn) error {
			applied, skipped = 0, 0
			start := time.Now()
			for t.writes < maxBatchWrites && (applied+skipped == 0 || time.Since(start) < maxBatchHold) {
				f, ok, err := rd.next()
				if err != nil {
					return err
				}
				if !ok {
					done = true
					return nil
				}
				did, err := t.apply(f)
				if err != nil {
					return fmt.Errorf("repair %d of %q: %w", f.kind, f.key, err)
				}
				if did {
					applied++
				} else {
					skipped++
					c.g.log.Warn("index repair skipped: the record changed since the check's snapshot", "kind", f.kind, "key", fmt.Sprintf("%q", f.key), "delta", f.a)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.r.Repairs += applied
		c.r.RepairsSkipped += skipped
	}
	return nil
}

// apply applies one fix in t; false if it no longer applies.
func (t *txn) apply(f fix) (bool, error) {
	switch f.kind {
	case fixRepo:
		return true, t.ensureRepo(string(f.key))
	case fixBlob:
		return t.fixBlob(digest.Digest(f.key), f.a)
	case fixOrphanUnref:
		d := digest.Digest(f.key)
		if ok, err := t.has(blobKey(d)); err != nil || ok {
			return false, err
		}
		return true, t.del(unrefKey(d))
	case fixChunk:
		return t.fixChunk(chunkstore.ID(f.key), f.a)
	case fixPack:
		return t.fixPack(string(f.key), f.a, f.b)
	case fixUsage:
		return t.fixUsage(f.key, f.a, f.b == 1)
	case fixSchedule, fixUnschedule:
		return t.fixSchedule(f.key, f.kind == fixSchedule)
	case fixEncoding:
		return t.fixEncoding(f.key, f.a, f.b == 1)
	case fixStats:
		var d Stats
		if err := json.Unmarshal(f.key, &d); err != nil {
			return false, err
		}
		to, by := statFields(&t.stats), statFields(&d)
		for i := range to {
			*to[i].v += *by[i].v
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown repair kind %d", f.kind)
}

// fixBlob moves blob d's refs by delta (and the linked bytes with them),
// then stamps it unreferenced if and only if its refs are zero.
func (t *txn) fixBlob(d digest.Digest, delta int64) (bool, error) {
	bv, err := t.blob(d)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if delta != 0 {
		if bv.refs+delta < 0 {
			return false, nil
		}
		bv.refs += delta
		t.stats.LinkedBytes += delta * bv.size
		if err := t.set(blobKey(d), bv.encode()); err != nil {
			return false, err
		}
	}
	stamped, err := t.has(unrefKey(d))
	if err != nil {
		return false, err
	}
	return true, t.stampIf(bv.refs == 0, stamped, unrefKey(d))
}

// fixChunk moves a chunk's refs by delta, as a push or a deletion would.
func (t *txn) fixChunk(id chunkstore.ID, delta int64) (bool, error) {
	c, err := t.chunk(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil || c.Refs+delta < 0 {
		return false, err
	}
	return true, t.addChunkRef(id, delta, nil)
}

// fixPack moves a pack's live bytes and chunks.
func (t *txn) fixPack(name string, liveBytes, liveChunks int64) (bool, error) {
	if ok, err := t.has(packKey(name)); err != nil || !ok {
		return false, err
	}
	p, err := t.pack(name)
	if err != nil {
		return false, err
	}
	if p.LiveBytes+liveBytes < 0 || p.LiveChunks+liveChunks < 0 {
		return false, nil
	}
	p.LiveBytes += liveBytes
	p.LiveChunks += liveChunks
	return true, nil
}

// fixUsage moves a use count by delta (or sets it, if it did not decode),
// then stamps the link, if there is one, unused if and only if the count
// is zero; a stamp of no link goes.
func (t *txn) fixUsage(key []byte, delta int64, set bool) (bool, error) {
	repo, d, ok := splitKey(key)
	if !ok {
		return false, fmt.Errorf("bad use count key %q", key)
	}
	r, dg := string(repo), digest.Digest(d)
	if set {
		if err := t.del(usageKey(r, dg)); err != nil {
			return false, err
		}
	}
	if delta != 0 {
		if err := t.addUsage(r, dg, delta); err != nil {
			return false, err
		}
	}
	n, err := t.usage(r, dg)
	if err != nil {
		return false, err
	}
	linked, err := t.has(linkKey(r, dg))
	if err != nil {
		return false, err
	}
	stamped, err := t.has(unusedKey(r, dg))
	if err != nil {
		return false, err
	}
	return true, t.stampIf(linked && n == 0, stamped, unusedKey(r, dg))
}

// fixSchedule sets (or drops) the schedule key rest, if the queue entry
// of its digest is (or is not) due at its time.
func (t *txn) fixSchedule(rest []byte, set bool) (bool, error) {
	if len(rest) < 8 {
		return true, t.del(append([]byte(prefixSchedule), rest...))
	}
	d := digest.Digest(rest[8:])
	key := append([]byte(prefixSchedule), rest...)
	q, ok, err := t.queued(d)
	if err != nil {
		return false, err
	}
	due := ok && bytes.Equal(scheduleKey(q.due(), d), key)
	switch {
	case set && due:
		return true, t.set(key, nil)
	case !set && !due:
		return true, t.del(key)
	}
	return false, nil
}

// fixEncoding moves an encoder class's count by delta (or sets it, if it
// did not decode).
func (t *txn) fixEncoding(class []byte, delta int64, set bool) (bool, error) {
	key := append([]byte(prefixEncoding), class...)
	var n int64
	v, err := t.get(key)
	switch {
	case err == nil && len(v) == 8 && !set:
		n = int64(binary.BigEndian.Uint64(v))
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, err
	}
	if n += delta; n < 0 {
		return false, nil
	} else if n == 0 {
		return true, t.del(key)
	}
	return true, t.set(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}
