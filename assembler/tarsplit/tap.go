package tarsplit

import (
	"bufio"
	"fmt"
	"hash"
	"hash/crc64"
	"io"

	"github.com/vbatts/tar-split/tar/storage"
)

// tapMode says where the bytes the parser consumes go.
type tapMode int

const (
	toSegment tapMode = iota // the current header segment
	toContent                // the content stream
)

// tap sits between the source and the tar parser. Every byte the parser
// consumes passes through Read exactly once and goes to exactly one place:
// the current header segment (toSegment) or the content stream
// (toContent). So segments and payloads, in order, are the input.
type tap struct {
	src  *bufio.Reader
	sum  hash.Hash // of every byte consumed: the tar's digest
	n    int64     // bytes consumed
	mode tapMode

	seg []byte // toSegment: bytes since the segment began

	content io.Writer
	crc     hash.Hash64 // toContent: of this entry's payload
	paid    int64       // toContent: this entry's payload bytes

	// Why the last Read failed, when it was not the source's io.EOF.
	srcErr, sinkErr error
	tooLarge        bool
}

func newTap(src io.Reader, sum hash.Hash, content io.Writer) *tap {
	return &tap{
		src:     bufio.NewReaderSize(src, 64<<10),
		sum:     sum,
		content: content,
		crc:     crc64.New(storage.CRCTable),
	}
}

// startSegment starts a new header segment.
func (t *tap) startSegment() {
	t.mode = toSegment
	t.seg = t.seg[:0]
}

// startPayload sends what follows to the content stream as one entry's
// payload.
func (t *tap) startPayload() {
	t.mode = toContent
	t.crc.Reset()
	t.paid = 0
}

func (t *tap) Read(p []byte) (int, error) {
	if t.mode == toSegment && len(t.seg)+len(p) > maxSegment {
		// Read no more than the cap allows; fail once it is full.
		room := maxSegment - len(t.seg)
		if room == 0 {
			t.tooLarge = true
			return 0, fmt.Errorf("tar header segment exceeds %d bytes", maxSegment)
		}
		p = p[:room]
	}
	n, err := t.src.Read(p)
	if n > 0 {
		b := p[:n]
		t.sum.Write(b)
		t.n += int64(n)
		switch t.mode {
		case toSegment:
			t.seg = append(t.seg, b...)
		case toContent:
			if _, werr := t.content.Write(b); werr != nil {
				t.sinkErr = werr
				return n, werr
			}
			t.crc.Write(b)
			t.paid += int64(n)
		}
	}
	if err != nil && err != io.EOF {
		t.srcErr = err
	}
	return n, err
}
