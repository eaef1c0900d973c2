package refgraph

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/chunkyard/chunkyard/internal/extsort"
	"github.com/cockroachdb/pebble/v2"
)

// The machinery of Check's phases: sorted streams of records (a key range
// of the snapshot, or the output of a sort) and a merge-join over them.

// snapReader is what Check reads: a Pebble snapshot.
type snapReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// stream is a sequence of records in key order.
type stream interface {
	valid() bool
	key() []byte
	value() []byte
	next()
	close() error // the error that ended the stream, if any
}

// prefixStream walks the keys under a prefix, without the prefix.
type prefixStream struct {
	it  *pebble.Iterator
	n   int
	ok  bool
	v   []byte
	err error
}

func (c *checker) prefix(prefix string) (*prefixStream, error) {
	it, err := c.snap.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		return nil, err
	}
	s := &prefixStream{it: it, n: len(prefix)}
	s.ok = it.First()
	s.load()
	return s, nil
}

func (s *prefixStream) load() {
	if s.ok {
		s.v, s.err = s.it.ValueAndErr()
		s.ok = s.err == nil
	}
}

func (s *prefixStream) valid() bool   { return s.ok }
func (s *prefixStream) key() []byte   { return s.it.Key()[s.n:] }
func (s *prefixStream) value() []byte { return s.v }
func (s *prefixStream) next()         { s.ok = s.it.Next(); s.load() }
func (s *prefixStream) close() error  { return errors.Join(s.err, s.it.Error(), s.it.Close()) }

// repoStream walks the distinct repositories of the keys under a prefix
// whose keys are <repo>\x00<rest>, seeking past each repository's keys.
type repoStream struct {
	it     *pebble.Iterator
	prefix []byte
	ok     bool
	repo   []byte
	seek   []byte
}

func (c *checker) repoPrefix(prefix string) (*repoStream, error) {
	it, err := c.snap.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		return nil, err
	}
	s := &repoStream{it: it, prefix: []byte(prefix)}
	s.ok = it.First()
	s.load()
	return s, nil
}

func (s *repoStream) load() {
	if !s.ok {
		return
	}
	rest := s.it.Key()[len(s.prefix):]
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	s.repo = rest
}

func (s *repoStream) valid() bool   { return s.ok }
func (s *repoStream) key() []byte   { return s.repo }
func (s *repoStream) value() []byte { return nil }
func (s *repoStream) close() error  { return errors.Join(s.it.Error(), s.it.Close()) }

// next seeks to <prefix><repo>\x01, the first key past <prefix><repo>\x00.
func (s *repoStream) next() {
	s.seek = append(append(append(s.seek[:0], s.prefix...), s.repo...), 1)
	s.ok = s.it.SeekGE(s.seek)
	s.load()
}

// sortedStream walks a sort's output.
type sortedStream struct {
	it *extsort.Iter
	ok bool
}

func (c *checker) sorted(s *sorter) (*sortedStream, error) {
	it, err := s.Sort(c.ctx)
	if err != nil {
		return nil, err
	}
	return &sortedStream{it: it, ok: it.Next()}, nil
}

func (s *sortedStream) valid() bool   { return s.ok }
func (s *sortedStream) key() []byte   { return s.it.Key() }
func (s *sortedStream) value() []byte { return s.it.Value() }
func (s *sortedStream) next()         { s.ok = s.it.Next() }
func (s *sortedStream) close() error  { return s.it.Err() }

// join walks streams together in key order and calls fn once per distinct
// key, with on[i] telling whether stream i is at that key (its value is
// streams[i].value()). The key is valid during the call only. Every
// stream is closed when join returns.
func (c *checker) join(streams []stream, fn func(key []byte, on []bool) error) (err error) {
	defer func() {
		for _, s := range streams {
			err = errors.Join(err, s.close())
		}
	}()
	on := make([]bool, len(streams))
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := c.ctx.Err(); err != nil {
				return err
			}
		}
		var key []byte
		found := false
		for _, s := range streams {
			if s.valid() && (!found || bytes.Compare(s.key(), key) < 0) {
				key, found = s.key(), true
			}
		}
		if !found {
			return nil
		}
		for i, s := range streams {
			on[i] = s.valid() && bytes.Equal(s.key(), key)
		}
		if err := fn(key, on); err != nil {
			return err
		}
		for i, s := range streams {
			if on[i] {
				s.next()
			}
		}
	}
}

// open makes streams, closing those made if one fails.
func open(makers ...func() (stream, error)) ([]stream, error) {
	var out []stream
	for _, m := range makers {
		s, err := m()
		if err != nil {
			for _, o := range out {
				o.close()
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *checker) keys(prefix string) func() (stream, error) {
	return func() (stream, error) { return c.prefix(prefix) }
}

func (c *checker) repos(prefix string) func() (stream, error) {
	return func() (stream, error) { return c.repoPrefix(prefix) }
}

func (c *checker) output(s *sorter) func() (stream, error) {
	return func() (stream, error) { return c.sorted(s) }
}

// each calls fn for every record under prefix, with the key's rest.
func (c *checker) each(prefix string, fn func(rest, value []byte) error) error {
	s, err := c.prefix(prefix)
	if err != nil {
		return err
	}
	return c.join([]stream{s}, func(k []byte, _ []bool) error { return fn(k, s.value()) })
}

// Counts in sorts are uvarints, summed when keys meet.
var one = binary.AppendUvarint(nil, 1)

func sumCounts(acc, v []byte) []byte {
	a, _ := binary.Uvarint(acc)
	b, _ := binary.Uvarint(v)
	return binary.AppendUvarint(acc[:0], a+b)
}

func count(v []byte) int64 {
	n, _ := binary.Uvarint(v)
	return int64(n)
}
