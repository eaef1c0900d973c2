package extsort

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"slices"
)

// A run file is a sequence of records in key order, each
//
//	uvarint shared    bytes of the previous key that this key starts with
//	uvarint rest      bytes of the key after those
//	uvarint vlen      bytes of the value
//	rest bytes of key, then vlen bytes of value
//
// and nothing else: the record count and the CRC-32C of the file stay in
// memory (run) and are checked when the run is read back.
type run struct {
	path    string
	records int64
	crc     uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type runWriter struct {
	run  run
	f    *os.File
	w    *bufio.Writer
	crc  hash.Hash32
	prev []byte
	hdr  []byte
}

func createRun(path string, bufSize int) (*runWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("extsort: %w", err)
	}
	crc := crc32.New(castagnoli)
	return &runWriter{run: run{path: path}, f: f, w: bufio.NewWriterSize(io.MultiWriter(f, crc), bufSize), crc: crc}, nil
}

func (w *runWriter) write(key, value []byte) error {
	shared := 0
	for shared < len(key) && shared < len(w.prev) && key[shared] == w.prev[shared] {
		shared++
	}
	w.hdr = binary.AppendUvarint(w.hdr[:0], uint64(shared))
	w.hdr = binary.AppendUvarint(w.hdr, uint64(len(key)-shared))
	w.hdr = binary.AppendUvarint(w.hdr, uint64(len(value)))
	w.w.Write(w.hdr)
	w.w.Write(key[shared:])
	if _, err := w.w.Write(value); err != nil { // bufio.Writer errors are sticky
		return fmt.Errorf("extsort: writing %s: %w", w.run.path, err)
	}
	w.prev = append(w.prev[:0], key...)
	w.run.records++
	return nil
}

func (w *runWriter) finish() (*run, error) {
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.run.path)
		return nil, fmt.Errorf("extsort: writing %s: %w", w.run.path, err)
	}
	w.run.crc = w.crc.Sum32()
	r := w.run // not &w.run: the writer and its buffer go
	return &r, nil
}

func (w *runWriter) abort() {
	w.f.Close()
	os.Remove(w.run.path)
}

// runReader reads a run back, checking it against what was written.
type runReader struct {
	run  *run
	f    *os.File
	r    *bufio.Reader
	crc  hash.Hash32
	left int64
	k, v []byte
}

// errCorrupt: a run file does not read back as written.
var errCorrupt = errors.New("extsort: run file corrupt")

func openRun(r *run, bufSize int) (*runReader, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("extsort: %w", err)
	}
	crc := crc32.New(castagnoli)
	return &runReader{run: r, f: f, r: bufio.NewReaderSize(io.TeeReader(f, crc), bufSize), crc: crc, left: r.records}, nil
}

func (rr *runReader) next() (bool, error) {
	if rr.left == 0 {
		if _, err := rr.r.ReadByte(); err != io.EOF {
			return false, fmt.Errorf("%w: %s: bytes after the last record", errCorrupt, rr.run.path)
		}
		if rr.crc.Sum32() != rr.run.crc {
			return false, fmt.Errorf("%w: %s: CRC mismatch", errCorrupt, rr.run.path)
		}
		return false, nil
	}
	shared, err1 := binary.ReadUvarint(rr.r)
	rest, err2 := binary.ReadUvarint(rr.r)
	vlen, err3 := binary.ReadUvarint(rr.r)
	if err := errors.Join(err1, err2, err3); err != nil {
		return false, rr.corrupt(err)
	}
	if shared > uint64(len(rr.k)) || rest > 1<<30 || vlen > 1<<30 {
		return false, rr.corrupt(errors.New("bad lengths"))
	}
	rr.k = readInto(rr.k[:shared], int(rest), rr.r, &err1)
	rr.v = readInto(rr.v[:0], int(vlen), rr.r, &err1)
	if err1 != nil {
		return false, rr.corrupt(err1)
	}
	rr.left--
	return true, nil
}

// readInto appends n bytes from r to b.
func readInto(b []byte, n int, r io.Reader, err *error) []byte {
	if *err != nil {
		return b
	}
	l := len(b)
	b = slices.Grow(b, n)[:l+n]
	_, *err = io.ReadFull(r, b[l:])
	return b
}

func (rr *runReader) corrupt(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", errCorrupt, rr.run.path, err)
}

func (rr *runReader) key() []byte   { return rr.k }
func (rr *runReader) value() []byte { return rr.v }
func (rr *runReader) close()        { rr.f.Close() }
