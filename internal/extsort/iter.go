package extsort

import (
	"bytes"
	"container/heap"
)

// source is a sorted stream of records: the sorted buffer or a run.
type source interface {
	next() (bool, error)
	key() []byte
	value() []byte
	close()
}

// Iter yields the sorted records. Key and Value are valid until the next
// call of Next.
type Iter struct {
	h       srcHeap
	combine func(acc, v []byte) []byte
	started bool
	k, v    []byte // the current record (with combine: copies)
	err     error
	closed  bool
	all     []source
}

func newIter(srcs []source, combine func(acc, v []byte) []byte) *Iter {
	return &Iter{all: srcs, combine: combine}
}

// Next moves to the next record; false at the end or on an error (Err).
func (it *Iter) Next() bool {
	if it.err != nil || it.closed {
		return false
	}
	if !it.started {
		it.started = true
		for _, s := range it.all {
			if !it.advance(s) {
				return false
			}
		}
		heap.Init(&it.h)
	} else if it.combine == nil && len(it.h) > 0 {
		// The record yielded last is still at the top: move past it.
		if !it.pop() {
			return false
		}
	}
	if len(it.h) == 0 {
		return false
	}
	if it.combine == nil {
		it.k, it.v = it.h[0].key(), it.h[0].value()
		return true
	}
	it.k = append(it.k[:0], it.h[0].key()...)
	it.v = append(it.v[:0], it.h[0].value()...)
	if !it.pop() {
		return false
	}
	for len(it.h) > 0 && bytes.Equal(it.h[0].key(), it.k) {
		it.v = it.combine(it.v, it.h[0].value())
		if !it.pop() {
			return false
		}
	}
	return true
}

// advance reads s's next record and puts s on the heap if it has one.
func (it *Iter) advance(s source) bool {
	ok, err := s.next()
	if err != nil {
		it.err = err
		return false
	}
	if ok {
		it.h = append(it.h, s)
	}
	return true
}

// pop moves the top source to its next record.
func (it *Iter) pop() bool {
	s := it.h[0]
	ok, err := s.next()
	if err != nil {
		it.err = err
		return false
	}
	if ok {
		heap.Fix(&it.h, 0)
	} else {
		heap.Pop(&it.h)
	}
	return true
}

// Key returns the current record's key.
func (it *Iter) Key() []byte { return it.k }

// Value returns the current record's value.
func (it *Iter) Value() []byte { return it.v }

// Err returns the error that ended the iteration, if any.
func (it *Iter) Err() error { return it.err }

func (it *Iter) close() {
	if it.closed {
		return
	}
	it.closed = true
	for _, s := range it.all {
		s.close()
	}
	it.all, it.h = nil, nil // their read buffers go
}

type srcHeap []source

func (h srcHeap) Len() int           { return len(h) }
func (h srcHeap) Less(i, j int) bool { return bytes.Compare(h[i].key(), h[j].key()) < 0 }
func (h srcHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *srcHeap) Push(x any)        { *h = append(*h, x.(source)) }
func (h *srcHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
