package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/chunkyard/chunkyard/assembler/deflate"
	"github.com/chunkyard/chunkyard/assembler/deflate/gnu"
	"github.com/chunkyard/chunkyard/assembler/deflate/zlib"
)

// Checkpoints is what an encode recorded (WriterOptions.CheckpointSpacing)
// so that the same blob can later be encoded in segments, several at once,
// or from a segment in the middle (Plan). It is a few dozen bytes per
// segment at most levels and at most a few KiB at the fast ones; the
// encoder's window is not in it but read again from the raw input.
//
// Encoding, all integers unsigned varints unless noted:
//
//	+---------+------+----------+------------+-----------------+---+-------------------------+
//	| version | kind | raw size | stream len | trailer         | n | n x (len, checkpoint)   |
//	| byte: 1 | byte |          | (bytes)    | 8 bytes, as is  |   | the encoder package's   |
//	|         |      |          |            |                 |   | MarshalBinary           |
//	+---------+------+----------+------------+-----------------+---+-------------------------+
//
// kind is 'd' (go-stdlib, assembler/deflate: one checkpoint per segment),
// 'z' (zlib) or 'g' (gnu-gzip): one checkpoint per boundary between
// segments (assembler/deflate/zlib and gnu). The stream length is that of
// the raw deflate stream, the trailer the gzip member's last 8 bytes
// (CRC32 and ISIZE), kept so that a segment in the middle can be served
// without the CRC of everything before it.
type Checkpoints []byte

const (
	checkpointsVersion = 1
	kindDeflate        = 'd'
	kindZlib           = 'z'
	kindGNU            = 'g'

	// maxCheckpoint bounds one checkpoint's encoding when reading a table
	// (level 1 and 2..3 checkpoints list matches and skips: a few KiB).
	maxCheckpoint = 1 << 20
)

// ErrSegment reports a segment whose output does not come out as its
// checkpoint says: the checkpoints do not belong to this input or
// encoding. Encoding the whole blob from its start is the way out.
var ErrSegment = errors.New("codec: segment does not match its checkpoint")

// recorder collects an encode's checkpoints as they come and makes the
// table at the end.
type recorder struct {
	kind  byte
	cps   [][]byte
	table Checkpoints
}

func (r *recorder) add(cp interface{ MarshalBinary() ([]byte, error) }) error {
	b, err := cp.MarshalBinary()
	if err != nil {
		return err
	}
	r.cps = append(r.cps, b)
	return nil
}

// finish makes the table once the trailer is known; an encode that was
// not cut in at least two segments gets none.
func (r *recorder) finish(rawSize, streamLen int64, trailer []byte) {
	segments := len(r.cps)
	if r.kind != kindDeflate {
		segments++ // boundaries
	}
	if segments < 2 {
		return
	}
	b := []byte{checkpointsVersion, r.kind}
	b = binary.AppendUvarint(b, uint64(rawSize))
	b = binary.AppendUvarint(b, uint64(streamLen))
	b = append(b, trailer...)
	b = binary.AppendUvarint(b, uint64(len(r.cps)))
	for _, c := range r.cps {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	r.table = b
}

// Segment is one piece of a Plan.
type Segment struct {
	In, End     int64 // the raw input it encodes
	From, To    int64 // the raw input it reads: history before In, lookahead after End
	Bit, EndBit int64 // the deflate stream's bits it writes
}

// Plan encodes one blob in segments from the checkpoints an encode of it
// recorded: several at once, or from a segment in the middle. The output
// is the recorded encode's, byte for byte, when the raw input is the
// same; a segment that comes out otherwise fails with ErrSegment, and
// the caller's digest check catches what that misses.
type Plan struct {
	header    []byte
	trailer   []byte
	rawSize   int64
	streamLen int64
	level     int
	kind      byte
	segs      []Segment
	dcps      []deflate.Checkpoint // kind 'd': one per segment
	zcps      []zlib.Checkpoint    // kind 'z': the boundaries
	gcps      []gnu.Checkpoint     // kind 'g': the boundaries
}

// NewPlan reads the checkpoints an encode with enc recorded. It fails
// with ErrInvalid if they are malformed or do not belong to enc's encoder
// and level, and with ErrUnavailable if this build cannot write enc.
func NewPlan(enc Encoding, cps Checkpoints) (*Plan, error) {
	if _, err := helperFor(enc); err != nil {
		return nil, err
	}
	hdr := defaultGzipHeader(enc.Encoder, enc.Level)
	if enc.Gzip != nil {
		hdr = *enc.Gzip
	}
	header, err := hdr.appendTo(nil)
	if err != nil {
		return nil, err
	}
	p := &Plan{header: header, level: enc.Level}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: checkpoints: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(cps) < 2 || cps[0] != checkpointsVersion {
		return nil, bad("unknown version")
	}
	p.kind = cps[1]
	want := map[string]byte{EncoderStdlib: kindDeflate, EncoderZlib: kindZlib, EncoderGNUGzip: kindGNU}[enc.Encoder]
	if enc.Format != FormatGzip || want == 0 || p.kind != want {
		return nil, bad("kind %q does not fit %s", p.kind, enc)
	}
	r := tableReader{b: cps[2:]}
	p.rawSize = int64(r.uvarint())
	p.streamLen = int64(r.uvarint())
	p.trailer = r.bytes(8)
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) || p.rawSize < 0 || p.streamLen <= 0 {
		return nil, bad("truncated header")
	}
	raw := make([][]byte, n)
	for i := range raw {
		l := r.uvarint()
		if l > maxCheckpoint {
			r.err = errors.New("checkpoint too long")
		}
		raw[i] = r.bytes(int(l))
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, bad("malformed list")
	}
	if err := p.segments(raw); err != nil {
		return nil, bad("%v", err)
	}
	return p, nil
}

// segments decodes the checkpoints and lays out the segments, checking
// that they partition the input and the stream.
func (p *Plan) segments(raw [][]byte) error {
	size, endBit := p.rawSize, 8*p.streamLen
	switch p.kind {
	case kindDeflate:
		p.dcps = make([]deflate.Checkpoint, len(raw))
		for i, b := range raw {
			cp := &p.dcps[i]
			if err := cp.UnmarshalBinary(b); err != nil {
				return err
			}
			if cp.Level != p.level && !(p.level == deflate.DefaultCompression && cp.Level == 6) {
				return fmt.Errorf("checkpoint of level %d, encoding has %d", cp.Level, p.level)
			}
			to := cp.End
			if !cp.Final {
				to = min(size, cp.End+deflate.Lookahead)
			}
			p.segs = append(p.segs, Segment{In: cp.In, End: cp.End, From: cp.In - cp.HistoryLen(), To: to, Bit: cp.Bit, EndBit: cp.EndBit})
		}
	case kindZlib, kindGNU:
		type bound struct{ in, bit int64 }
		var bounds []bound
		var ranges [][2]int64
		if p.kind == kindZlib {
			p.zcps = make([]zlib.Checkpoint, len(raw))
			for i, b := range raw {
				if err := p.zcps[i].UnmarshalBinary(b); err != nil {
					return err
				}
				if p.zcps[i].Level != p.level {
					return fmt.Errorf("checkpoint of level %d, encoding has %d", p.zcps[i].Level, p.level)
				}
				bounds = append(bounds, bound{p.zcps[i].In, int64(p.zcps[i].Out)})
			}
			for i := 0; i <= len(raw); i++ {
				from, to := zlib.SegmentInput(p.zcp(i-1), p.zcp(i), size)
				ranges = append(ranges, [2]int64{from, to})
			}
		} else {
			p.gcps = make([]gnu.Checkpoint, len(raw))
			for i, b := range raw {
				if err := p.gcps[i].UnmarshalBinary(b); err != nil {
					return err
				}
				if p.gcps[i].Level != p.level {
					return fmt.Errorf("checkpoint of level %d, encoding has %d", p.gcps[i].Level, p.level)
				}
				bounds = append(bounds, bound{p.gcps[i].In, int64(p.gcps[i].Out)})
			}
			for i := 0; i <= len(raw); i++ {
				from, to := gnu.SegmentInput(p.gcp(i-1), p.gcp(i), size)
				ranges = append(ranges, [2]int64{from, to})
			}
		}
		in, bit := int64(0), int64(0)
		for i, r := range ranges {
			end, ebit := size, endBit
			if i < len(bounds) {
				end, ebit = bounds[i].in, bounds[i].bit
			}
			p.segs = append(p.segs, Segment{In: in, End: end, From: r[0], To: r[1], Bit: bit, EndBit: ebit})
			in, bit = end, ebit
		}
	}
	for i, s := range p.segs {
		wantIn, wantBit := int64(0), int64(0)
		if i > 0 {
			wantIn, wantBit = p.segs[i-1].End, p.segs[i-1].EndBit
		}
		switch {
		case s.In != wantIn || s.Bit != wantBit || s.End <= s.In || s.EndBit <= s.Bit:
			return fmt.Errorf("segment %d [%d,%d) bits [%d,%d) does not follow the one before", i, s.In, s.End, s.Bit, s.EndBit)
		case s.From < 0 || s.From > s.In || s.To < s.End || s.To > size:
			return fmt.Errorf("segment %d reads [%d,%d) for [%d,%d)", i, s.From, s.To, s.In, s.End)
		case i > 0 && s.From < p.segs[i-1].From:
			return fmt.Errorf("segment %d reads from %d, before the one before", i, s.From)
		}
	}
	if last := p.segs[len(p.segs)-1]; last.End != size || last.EndBit > endBit || last.EndBit <= endBit-8 {
		return fmt.Errorf("segments end at %d bit %d; input has %d bytes, stream %d", last.End, last.EndBit, size, p.streamLen)
	}
	return nil
}

func (p *Plan) zcp(i int) *zlib.Checkpoint {
	if i < 0 || i >= len(p.zcps) {
		return nil
	}
	return &p.zcps[i]
}

func (p *Plan) gcp(i int) *gnu.Checkpoint {
	if i < 0 || i >= len(p.gcps) {
		return nil
	}
	return &p.gcps[i]
}

// Segments lists the plan's segments in stream order.
func (p *Plan) Segments() []Segment { return p.segs }

// RawSize is the size of the raw input (the tar).
func (p *Plan) RawSize() int64 { return p.rawSize }

// Size is the size of the blob the plan writes.
func (p *Plan) Size() int64 { return int64(len(p.header)) + p.streamLen + int64(len(p.trailer)) }

// Offset is the blob offset from which Encode, started at segment i,
// writes: the blob's start for the first segment, else the first byte of
// the stream that segment i's bits start (not one the segment before
// shares).
func (p *Plan) Offset(i int) int64 {
	if i == 0 {
		return 0
	}
	return int64(len(p.header)) + (p.segs[i].Bit+7)/8
}

// StartFor returns the last segment from which Encode reaches blob
// offset off soonest.
func (p *Plan) StartFor(off int64) int {
	i := 0
	for i+1 < len(p.segs) && p.Offset(i+1) <= off {
		i++
	}
	return i
}

// EncodeSegment writes segment i's piece of the deflate stream to dst:
// bits [Bit, EndBit) as whole bytes, the first byte's Bit%8 low bits and
// the last byte's bits past EndBit zero. input is the raw input
// [From, To) of the segment.
func (p *Plan) EncodeSegment(ctx context.Context, i int, dst io.Writer, input []byte) error {
	s := p.segs[i]
	if int64(len(input)) != s.To-s.From {
		return fmt.Errorf("codec: segment %d: %d input bytes, want %d", i, len(input), s.To-s.From)
	}
	src := &segmentInput{b: input, base: s.From, size: p.rawSize}
	var err error
	switch p.kind {
	case kindDeflate:
		err = deflate.EncodeSegment(dst, src, p.rawSize, p.dcps[i])
	case kindZlib, kindGNU:
		var tail byte
		var bits int
		if p.kind == kindZlib {
			tail, bits, err = zlib.EncodeSegment(ctx, dst, src, p.rawSize, p.level, p.zcp(i-1), p.zcp(i))
		} else {
			tail, bits, err = gnu.EncodeSegment(ctx, dst, src, p.rawSize, p.level, p.gcp(i-1), p.gcp(i))
		}
		if err == nil && bits > 0 {
			_, err = dst.Write([]byte{tail})
		}
	}
	switch {
	case errors.Is(err, deflate.ErrMismatch), errors.Is(err, zlib.ErrMismatch), errors.Is(err, gnu.ErrMismatch):
		return fmt.Errorf("%w: segment %d [%d,%d): %w", ErrSegment, i, s.In, s.End, err)
	case err != nil:
		return fmt.Errorf("codec: segment %d [%d,%d): %w", i, s.In, s.End, err)
	}
	return nil
}

// segmentInput is the io.ReaderAt a segment encoder reads: the segment's
// input bytes, at their offsets in the raw input of size bytes.
type segmentInput struct {
	b          []byte
	base, size int64
}

func (s *segmentInput) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	if off < s.base || off > s.base+int64(len(s.b)) {
		return 0, fmt.Errorf("codec: segment reads at %d, outside its input [%d,%d)", off, s.base, s.base+int64(len(s.b)))
	}
	n := copy(p, s.b[off-s.base:])
	switch {
	case n == len(p):
		return n, nil
	case off+int64(n) == s.size:
		return n, io.EOF
	}
	return n, fmt.Errorf("codec: segment reads up to %d, past its input's end %d", off+int64(len(p)), s.base+int64(len(s.b)))
}

// tableReader decodes a checkpoint table.
type tableReader struct {
	b   []byte
	err error
}

func (r *tableReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *tableReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}
