package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// ZstdParams are the klauspost zstd encoder options that shape the output
// beyond the level. A nil *ZstdParams in an Encoding means the defaults:
// checksum on, the level's window, no declared size.
type ZstdParams struct {
	Checksum    bool  // WithEncoderCRC: the frame ends in a content checksum
	WindowSize  int   `json:",omitempty"` // WithWindowSize; 0: the level's default
	ContentSize int64 `json:",omitempty"` // declared with ResetContentSize; 0: none
}

// zstdConcurrency is the encoder's concurrency on NewWriter: 2 overlaps
// encoding a block with filling the next. It does not shape the output
// (TestZstdConcurrencyIndependent).
const zstdConcurrency = 2

func newZstdWriter(w io.Writer, enc Encoding, h *helper, concurrency int) (io.WriteCloser, error) {
	if concurrency <= 0 {
		concurrency = zstdConcurrency
	}
	p := ZstdParams{Checksum: true}
	if enc.Zstd != nil {
		p = *enc.Zstd
	}
	level := zstd.EncoderLevel(enc.Level)
	switch {
	case level < zstd.SpeedFastest || level > zstd.SpeedBestCompression:
		return nil, fmt.Errorf("%w: zstd level %d", ErrInvalid, enc.Level)
	case enc.BlockSize != 0 || enc.Gzip != nil:
		return nil, fmt.Errorf("%w: zstd with gzip parameters", ErrInvalid)
	case p.ContentSize < 0:
		return nil, fmt.Errorf("%w: zstd content size %d", ErrInvalid, p.ContentSize)
	}
	if h != nil {
		return h.start(w, helperParams{Encoder: enc.Encoder, Level: enc.Level, Concurrency: concurrency,
			Checksum: p.Checksum, WindowSize: p.WindowSize, ContentSize: p.ContentSize})
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(p.Checksum),
		zstd.WithEncoderConcurrency(concurrency),
	}
	if p.WindowSize != 0 {
		opts = append(opts, zstd.WithWindowSize(p.WindowSize))
	}
	e, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if p.ContentSize > 0 {
		e.ResetContentSize(w, p.ContentSize)
	} else {
		e.Reset(w)
	}
	return e, nil
}

// zstdFrame is what Find reads from a zstd frame header.
type zstdFrame struct {
	single      bool  // Single_Segment_flag: no window descriptor
	checksum    bool  // Content_Checksum_flag
	dictID      bool  // a dictionary ID is present
	window      int64 // from the window descriptor; 0 if single
	contentSize int64 // Frame_Content_Size; -1 if absent
}

var errZstdHeader = errors.New("codec: unsupported zstd frame header")

// readZstdFrameHeader parses the frame header (RFC 8878 3.1.1.1).
func readZstdFrameHeader(r *bufio.Reader) (zstdFrame, error) {
	var b [5]byte // magic, frame header descriptor
	if _, err := io.ReadFull(r, b[:5]); err != nil {
		return zstdFrame{}, noEOF(err)
	}
	if !hasPrefix(b[:], zstdMagic) {
		return zstdFrame{}, fmt.Errorf("%w: not zstd", errZstdHeader)
	}
	fhd := b[4]
	f := zstdFrame{
		single:      fhd&(1<<5) != 0,
		checksum:    fhd&(1<<2) != 0,
		dictID:      fhd&3 != 0,
		contentSize: -1,
	}
	if fhd&(1<<3) != 0 {
		return zstdFrame{}, fmt.Errorf("%w: reserved bit set", errZstdHeader)
	}
	if !f.single {
		wd, err := r.ReadByte()
		if err != nil {
			return zstdFrame{}, noEOF(err)
		}
		base := int64(1) << (10 + wd>>3)
		f.window = base + base/8*int64(wd&7)
	}
	if _, err := r.Discard([4]int{0, 1, 2, 4}[fhd&3]); err != nil {
		return zstdFrame{}, noEOF(err)
	}
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if fcsLen == 0 && f.single {
		fcsLen = 1
	}
	var fcs [8]byte
	if _, err := io.ReadFull(r, fcs[:fcsLen]); err != nil {
		return zstdFrame{}, noEOF(err)
	}
	if fcsLen > 0 {
		f.contentSize = int64(binary.LittleEndian.Uint64(fcs[:]))
		if fcsLen == 2 {
			f.contentSize += 256
		}
		if f.contentSize < 0 {
			return zstdFrame{}, fmt.Errorf("%w: content size overflows int64", errZstdHeader)
		}
	}
	return f, nil
}
