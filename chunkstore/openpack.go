package chunkstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// openPack is a pack file in staging/.
type openPack struct {
	name string
	path string
	f    vfs.File

	size    atomic.Int64 // end of the last complete record; written under Store.mu
	entries []PackEntry  // guarded by Store.mu until the pack is rotated out

	syncMu sync.Mutex
	synced int64 // bytes known durable
	failed error // sticky: an fsync failed, nothing more of the pack is acknowledged
	broken error // sticky: a write failed, the pack takes no more appends and is sealed only by recovery

	rw     sync.RWMutex // ReadChunk holds R while reading f; closing f takes W
	closed bool         // under rw
}

// newPackName returns a random 128-bit hex pack name.
func newPackName() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// isPackName reports whether name has the form newPackName returns.
func isPackName(name string) bool {
	if len(name) != 32 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// newPack creates a pack file in staging/ with its header written, and
// registers it for readers. Called with s.mu held.
func (s *Store) newPack() (*openPack, error) {
	name, err := newPackName()
	if err != nil {
		return nil, fmt.Errorf("new pack: %w", err)
	}
	path := filepath.Join(s.stagingDir, name)
	// Names are 128 random bits: Create never meets an existing file.
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("new pack: %w", err)
	}
	if _, err := f.WriteAt(packHeader(), 0); err != nil {
		_ = f.Close()
		_ = s.fs.Remove(path)
		return nil, fmt.Errorf("new pack %s: %w", name, err)
	}
	// The file's directory entry must be durable before any fsync of its
	// records can acknowledge a Write.
	if err := s.syncDir(s.stagingDir); err != nil {
		_ = f.Close()
		_ = s.fs.Remove(path)
		return nil, fmt.Errorf("new pack %s: %w", name, err)
	}
	p := &openPack{name: name, path: path, f: f}
	p.size.Store(packHeaderLen)
	s.packsMu.Lock()
	s.open[name] = p
	s.packsMu.Unlock()
	s.log.Debug("opened pack", "pack", name)
	return p, nil
}

// appendRecord appends one record to the current pack. It returns the
// chunk's location and the pack it went into; full is that pack if it
// reached the pack size and was rotated out, and must then be sealed by
// the caller.
func (s *Store) appendRecord(id ID, rawLen uint32, stored []byte, compressed bool, crc uint32) (loc Location, p, full *openPack, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Location{}, nil, nil, ErrClosed
	}
	if s.cur != nil && s.cur.err() != nil {
		s.log.Warn("abandoning failed pack; it stays in staging for recovery", "pack", s.cur.name, "err", s.cur.err())
		s.cur = nil
	}
	if s.cur == nil {
		if s.cur, err = s.newPack(); err != nil {
			return Location{}, nil, nil, err
		}
	}
	p = s.cur
	h := recordHeader{rawLen: rawLen, storedLen: uint32(len(stored)), id: id, dataCRC: crc}
	if compressed {
		h.flags |= flagCompressed
	}
	var hdr [recordHeaderLen]byte
	h.encode(&hdr)
	// Writes go at explicit offsets and the recorded size only moves past
	// complete records. A failed write may have left part of a record past
	// that size: the pack then takes no more appends (a file cannot be cut
	// back through vfs.FS), stays readable, and is sealed by the recovery
	// at the next Open, which cuts that tail.
	off := p.size.Load()
	if _, err := p.f.WriteAt(hdr[:], off); err != nil {
		return Location{}, nil, nil, p.breakAppends(fmt.Errorf("append to pack %s: %w", p.name, err))
	}
	if _, err := p.f.WriteAt(stored, off+recordHeaderLen); err != nil {
		return Location{}, nil, nil, p.breakAppends(fmt.Errorf("append to pack %s: %w", p.name, err))
	}
	loc = Location{
		Pack:       p.name,
		Offset:     off + recordHeaderLen,
		StoredLen:  uint32(len(stored)),
		RawLen:     rawLen,
		Compressed: compressed,
	}
	p.entries = append(p.entries, PackEntry{ID: id, Loc: loc})
	end := loc.Offset + int64(len(stored))
	p.size.Store(end)
	if end >= s.packSize {
		full = p
		s.cur = nil
	}
	return loc, p, full, nil
}

// err returns why the pack takes no more appends, nil if it does.
func (p *openPack) err() error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	return p.broken
}

// fail makes a failed fsync sticky (if the pack had not failed yet) and
// returns err.
func (p *openPack) fail(err error) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.failed == nil {
		p.failed = err
	}
	return err
}

// breakAppends records a failed write and returns err. The records before
// it are intact and can still be synced.
func (p *openPack) breakAppends(err error) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.broken == nil {
		p.broken = err
	}
	return err
}

// syncTo makes the first need bytes of the pack durable. Concurrent callers
// share fsyncs: one fsync covers everything written before it started.
func (p *openPack) syncTo(need int64) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	if p.synced >= need {
		return nil
	}
	target := p.size.Load()
	if err := p.f.Sync(); err != nil {
		p.failed = fmt.Errorf("fsync pack %s: %w", p.name, err)
		return p.failed
	}
	p.synced = target
	return nil
}

func (p *openPack) close() {
	p.rw.Lock()
	defer p.rw.Unlock()
	if !p.closed {
		p.closed = true
		_ = p.f.Close()
	}
}

// forget removes p from the readers' map and closes its file once no
// reader uses it.
func (s *Store) forget(p *openPack) {
	s.packsMu.Lock()
	if s.open[p.name] == p {
		delete(s.open, p.name)
	}
	s.packsMu.Unlock()
	p.close()
}

// discard deletes a pack that holds no record.
func (s *Store) discard(p *openPack) {
	s.forget(p)
	if err := fsutil.RemoveDurably(s.fs, p.path); err != nil {
		s.log.Warn("removing empty pack", "pack", p.name, "err", err)
	}
}

// seal writes p's trailer, fsyncs it and hands the pack to the backend. p
// takes no more appends. If the hand-over fails the pack stays readable in
// staging/ and is retried by later seals and by Close.
func (s *Store) seal(ctx context.Context, p *openPack) error {
	start := time.Now()
	end := p.size.Load()
	trailer := encodeTrailer(p.entries)
	// Decode what we are about to write (restic does the same).
	footerOff := len(trailer) - footerLen
	eOff, eLen, crc, err := parseFooter(trailer[footerOff:], end+int64(len(trailer)))
	if err == nil {
		_, err = parseEntries(trailer[:footerOff], crc, eOff, p.name, uint32(s.cfg.MaxChunk))
		if err == nil && eLen != int64(footerOff) {
			err = fmt.Errorf("entries length %d, want %d", eLen, footerOff)
		}
	}
	if err != nil {
		return s.failPack(p, fmt.Errorf("seal pack %s: trailer does not decode: %w", p.name, err))
	}
	if err := p.writeTrailer(trailer, end); err != nil {
		return s.failPack(p, err)
	}
	if _, ok := s.backend.(Adopter); !ok {
		// The pack is durable in staging: upload it in the background.
		s.mu.Lock()
		s.unsealed = append(s.unsealed, p)
		s.mu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
		s.log.Debug("sealed pack, queued for upload", "pack", p.name, "chunks", len(p.entries),
			"bytes", end+int64(len(trailer)), "duration", time.Since(start))
		return nil
	}
	if err := s.handOver(ctx, p); err != nil {
		s.log.Error("handing sealed pack to backend failed; will retry", "pack", p.name, "err", err)
		s.mu.Lock()
		s.unsealed = append(s.unsealed, p)
		s.mu.Unlock()
		return err
	}
	s.log.Debug("sealed pack", "pack", p.name, "chunks", len(p.entries),
		"bytes", end+int64(len(trailer)), "duration", time.Since(start))
	return s.retryUnsealed(ctx)
}

func (s *Store) failPack(p *openPack, err error) error {
	p.fail(err)
	s.log.Error("sealing pack failed; it stays in staging for recovery", "pack", p.name, "err", err)
	return err
}

// writeTrailer appends the trailer at end, which must be the end of the
// file, and fsyncs; the whole pack is then durable.
func (p *openPack) writeTrailer(trailer []byte, end int64) error {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if p.failed != nil {
		return p.failed
	}
	if p.broken != nil {
		return p.broken
	}
	// Only a failed write leaves bytes past the last record, and it fails
	// the pack: check anyway, a footer must be the last bytes of a pack.
	st, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("seal pack %s: %w", p.name, err)
	}
	if st.Size() != end {
		return fmt.Errorf("seal pack %s: file of %d bytes, records end at %d", p.name, st.Size(), end)
	}
	if _, err := p.f.WriteAt(trailer, end); err != nil {
		return fmt.Errorf("seal pack %s: %w", p.name, err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("seal pack %s: %w", p.name, err)
	}
	p.synced = end // every record; syncTo never needs more
	return nil
}

// handOver moves a sealed staging pack to the backend and forgets it.
func (s *Store) handOver(ctx context.Context, p *openPack) error {
	ctx = context.WithoutCancel(ctx) // a half-done hand-over helps no one
	if a, ok := s.backend.(Adopter); ok {
		if err := a.Adopt(ctx, p.name, p.path); err != nil {
			return fmt.Errorf("seal pack %s: %w", p.name, err)
		}
	} else {
		st, err := p.f.Stat()
		if err != nil {
			return fmt.Errorf("seal pack %s: %w", p.name, err)
		}
		if err := s.backend.Put(ctx, p.name, io.NewSectionReader(p.f, 0, st.Size()), st.Size()); err != nil {
			return fmt.Errorf("seal pack %s: %w", p.name, err)
		}
		if err := fsutil.RemoveDurably(s.fs, p.path); err != nil {
			return fmt.Errorf("seal pack %s: remove staging file: %w", p.name, err)
		}
	}
	// The backend has the pack: new readers go there, and the staging file
	// closes when the last reader of it is done.
	s.forget(p)
	return nil
}

// retryUnsealed retries handing over packs whose earlier hand-over failed.
func (s *Store) retryUnsealed(ctx context.Context) error {
	s.mu.Lock()
	todo := s.unsealed
	s.unsealed = nil
	s.mu.Unlock()
	var errs []error
	for i, p := range todo {
		if err := s.handOver(ctx, p); err != nil {
			s.mu.Lock()
			s.unsealed = append(s.unsealed, todo[i:]...)
			s.mu.Unlock()
			errs = append(errs, err)
			break
		}
		s.log.Info("handed over pack after retry", "pack", p.name)
	}
	return errors.Join(errs...)
}

// uploader hands sealed packs to the backend as they come, retrying with
// backoff (1 s doubling to a minute) while the backend fails.
func (s *Store) uploader(ctx context.Context) {
	defer close(s.uploaderDone)
	const minWait, maxWait = time.Second, time.Minute
	wait := minWait
	for {
		var retry <-chan time.Time
		s.mu.Lock()
		pending := len(s.unsealed)
		s.mu.Unlock()
		if pending > 0 {
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry:
		}
		if err := s.retryUnsealed(ctx); err != nil {
			s.log.Warn("pack upload failed; will retry", "err", err, "in", wait)
			wait = min(2*wait, maxWait)
			continue
		}
		wait = minWait
	}
}
