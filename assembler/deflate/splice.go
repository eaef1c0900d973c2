package deflate

import (
	"bytes"
	"fmt"
	"io"
)

// A Splicer joins segment outputs (as [EncodeSegment] writes them) into
// one byte stream: a segment that starts inside a byte has that byte's
// low bits zero, and they are ORed into the previous segment's last,
// partial byte. Segments must come in stream order.
type Splicer struct {
	w       io.Writer
	bit     int64 // stream bit offset where the next segment must start
	pending []byte
	inSeg   bool
	seg     struct{ start, end, got int64 } // bytes of the current segment
	err     error
}

// NewSplicer returns a Splicer writing the stream from bit 0 to w.
func NewSplicer(w io.Writer) *Splicer { return &Splicer{w: w} }

// Begin starts the segment of stream bits [bit, endBit).
func (s *Splicer) Begin(bit, endBit int64) error {
	if s.err != nil {
		return s.err
	}
	if s.inSeg || bit != s.bit || endBit < bit {
		s.err = fmt.Errorf("deflate: splice: segment [%d,%d) after bit %d", bit, endBit, s.bit)
		return s.err
	}
	s.inSeg = true
	s.seg.start, s.seg.end, s.seg.got = bit, endBit, 0
	return nil
}

// segBytes is the number of bytes of a segment of bits [bit, endBit).
func segBytes(bit, endBit int64) int64 { return (endBit+7)/8 - bit/8 }

// Write takes the next bytes of the current segment.
func (s *Splicer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if !s.inSeg || s.seg.got+int64(len(p)) > segBytes(s.seg.start, s.seg.end) {
		s.err = fmt.Errorf("deflate: splice: more bytes than segment [%d,%d) holds", s.seg.start, s.seg.end)
		return 0, s.err
	}
	n := len(p)
	if len(p) > 0 && s.seg.got == 0 && s.seg.start%8 != 0 {
		// The first byte continues the previous segment's last byte.
		if len(s.pending) != 1 {
			s.err = fmt.Errorf("deflate: splice: no partial byte to continue at bit %d", s.seg.start)
			return 0, s.err
		}
		s.pending[0] |= p[0]
		p = p[1:]
		s.seg.got++
	}
	if len(p) > 0 {
		// Hold back the last byte: it may be partial.
		if err := s.emit(s.pending); err != nil {
			return 0, err
		}
		if err := s.emit(p[:len(p)-1]); err != nil {
			return 0, err
		}
		s.pending = append(s.pending[:0], p[len(p)-1])
		s.seg.got += int64(len(p))
	}
	return n, nil
}

func (s *Splicer) emit(p []byte) error {
	if len(p) == 0 || s.err != nil {
		return s.err
	}
	if _, err := s.w.Write(p); err != nil {
		s.err = err
	}
	return s.err
}

// End ends the current segment, which must have had all its bytes.
func (s *Splicer) End() error {
	if s.err != nil {
		return s.err
	}
	if !s.inSeg || s.seg.got != segBytes(s.seg.start, s.seg.end) {
		s.err = fmt.Errorf("deflate: splice: segment [%d,%d) got %d bytes, want %d", s.seg.start, s.seg.end, s.seg.got, segBytes(s.seg.start, s.seg.end))
		return s.err
	}
	s.inSeg = false
	s.bit = s.seg.end
	if s.bit%8 == 0 && len(s.pending) > 0 {
		err := s.emit(s.pending)
		s.pending = s.pending[:0]
		return err
	}
	return nil
}

// Close writes the held-back last byte (partial, high bits zero, when the
// last segment ended inside a byte). It does not close the writer.
func (s *Splicer) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.inSeg {
		return fmt.Errorf("deflate: splice: closed inside segment [%d,%d)", s.seg.start, s.seg.end)
	}
	err := s.emit(s.pending)
	s.pending = nil
	return err
}

// A Piece is one segment's output for [Splice].
type Piece struct {
	Bit, EndBit int64 // stream bits the piece holds
	Data        []byte
}

// Splice joins pieces (in stream order, the first starting at bit 0) into
// the stream's bytes.
func Splice(pieces []Piece) ([]byte, error) {
	var b bytes.Buffer
	s := NewSplicer(&b)
	for _, p := range pieces {
		if err := s.Begin(p.Bit, p.EndBit); err != nil {
			return nil, err
		}
		if _, err := s.Write(p.Data); err != nil {
			return nil, err
		}
		if err := s.End(); err != nil {
			return nil, err
		}
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
