package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// GzipHeader is a gzip member header as stored (RFC 1952). NewWriter
// writes it back byte for byte, whichever encoder makes the body.
type GzipHeader struct {
	Flags   byte   // FLG as stored: FTEXT 1, FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16
	ModTime uint32 // MTIME, Unix seconds; 0 means none
	XFL     byte
	OS      byte
	Extra   []byte `json:",omitempty"` // the FEXTRA field's payload
	// Name and Comment hold the stored ISO 8859-1 bytes as the runes
	// U+0001..U+00FF (as compress/gzip does), so they survive JSON.
	Name    string `json:",omitempty"`
	Comment string `json:",omitempty"`
}

// FLG bits.
const (
	flagText     = 1 << 0
	flagHCRC     = 1 << 1
	flagExtra    = 1 << 2
	flagName     = 1 << 3
	flagComment  = 1 << 4
	flagReserved = 0xe0

	gzipFixedLen  = 10
	maxGzipString = 1 << 16 // longer names or comments are refused
	osUnknown     = 255     // what Go-family writers store by default
	osUnix        = 3       // what GNU gzip stores
)

// errGzipHeader marks a header this package does not take (reserved
// flags, overlong strings): Find reports no match rather than an error.
var errGzipHeader = errors.New("codec: unsupported gzip header")

// defaultGzipHeader is the header a Go-family writer writes when the
// caller sets no field: OS 255, XFL from the level, and MTIME 0 from
// compress/gzip but uint32(time.Time{}.Unix()) = 0x886e0900 from
// klauspost gzip and pgzip, which do not special-case the zero time.
func defaultGzipHeader(encoder string, level int) GzipHeader {
	h := GzipHeader{XFL: xflFor(level), OS: osUnknown}
	switch encoder {
	case EncoderStdlib:
	case EncoderGNUGzip:
		h.OS = osUnix // gzip -n: no name, no time
	default:
		h.ModTime = zeroTimeMTIME
	}
	return h
}

// zeroTimeMTIME is uint32(time.Time{}.Unix()), the MTIME klauspost gzip
// and pgzip write for an unset ModTime.
const zeroTimeMTIME = 0x886e0900

// xflFor is the XFL byte Go-family writers derive from the level.
func xflFor(level int) byte {
	switch level {
	case 9:
		return 2
	case 1:
		return 4
	}
	return 0
}

func (h GzipHeader) validate() error {
	switch {
	case h.Flags&flagReserved != 0:
		return fmt.Errorf("%w: gzip header: reserved flag bits %#x", ErrInvalid, h.Flags&flagReserved)
	case h.Flags&flagExtra == 0 && len(h.Extra) > 0:
		return fmt.Errorf("%w: gzip header: extra field without FEXTRA", ErrInvalid)
	case len(h.Extra) > 0xffff:
		return fmt.Errorf("%w: gzip header: extra field of %d bytes", ErrInvalid, len(h.Extra))
	case h.Flags&flagName == 0 && h.Name != "":
		return fmt.Errorf("%w: gzip header: name without FNAME", ErrInvalid)
	case h.Flags&flagComment == 0 && h.Comment != "":
		return fmt.Errorf("%w: gzip header: comment without FCOMMENT", ErrInvalid)
	}
	return nil
}

// appendTo appends the header's bytes to b.
func (h GzipHeader) appendTo(b []byte) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	start := len(b)
	b = append(b, gzipMagic...)
	b = append(b, h.Flags)
	b = binary.LittleEndian.AppendUint32(b, h.ModTime)
	b = append(b, h.XFL, h.OS)
	if h.Flags&flagExtra != 0 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h.Extra)))
		b = append(b, h.Extra...)
	}
	var err error
	if h.Flags&flagName != 0 {
		if b, err = appendLatin1(b, h.Name); err != nil {
			return nil, fmt.Errorf("%w: gzip header name: %w", ErrInvalid, err)
		}
	}
	if h.Flags&flagComment != 0 {
		if b, err = appendLatin1(b, h.Comment); err != nil {
			return nil, fmt.Errorf("%w: gzip header comment: %w", ErrInvalid, err)
		}
	}
	if h.Flags&flagHCRC != 0 {
		b = binary.LittleEndian.AppendUint16(b, uint16(crc32.ChecksumIEEE(b[start:])))
	}
	return b, nil
}

// appendLatin1 appends s as NUL-terminated ISO 8859-1.
func appendLatin1(b []byte, s string) ([]byte, error) {
	for _, r := range s {
		if r == 0 || r > 0xff { // invalid UTF-8 decodes as U+FFFD
			return nil, fmt.Errorf("rune %U is not a non-NUL Latin-1 character", r)
		}
		b = append(b, byte(r))
	}
	return append(b, 0), nil
}

// readGzipHeader parses a gzip member header. A header it does not take
// gives an error wrapping errGzipHeader; a short one io.ErrUnexpectedEOF.
func readGzipHeader(r *bufio.Reader) (GzipHeader, error) {
	var fixed [gzipFixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return GzipHeader{}, noEOF(err)
	}
	if !hasPrefix(fixed[:], gzipMagic) {
		return GzipHeader{}, fmt.Errorf("%w: not gzip", errGzipHeader)
	}
	h := GzipHeader{
		Flags:   fixed[3],
		ModTime: binary.LittleEndian.Uint32(fixed[4:8]),
		XFL:     fixed[8],
		OS:      fixed[9],
	}
	if h.Flags&flagReserved != 0 {
		return GzipHeader{}, fmt.Errorf("%w: reserved flag bits %#x", errGzipHeader, h.Flags)
	}
	if h.Flags&flagExtra != 0 {
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return GzipHeader{}, noEOF(err)
		}
		h.Extra = make([]byte, binary.LittleEndian.Uint16(n[:]))
		if _, err := io.ReadFull(r, h.Extra); err != nil {
			return GzipHeader{}, noEOF(err)
		}
	}
	var err error
	if h.Flags&flagName != 0 {
		if h.Name, err = readLatin1(r); err != nil {
			return GzipHeader{}, fmt.Errorf("name: %w", err)
		}
	}
	if h.Flags&flagComment != 0 {
		if h.Comment, err = readLatin1(r); err != nil {
			return GzipHeader{}, fmt.Errorf("comment: %w", err)
		}
	}
	// FHCRC's two bytes are not kept: appendTo recomputes them, and the
	// trial's byte comparison catches a header whose CRC16 was wrong.
	return h, nil
}

// readLatin1 reads a NUL-terminated ISO 8859-1 string of at most
// maxGzipString bytes.
func readLatin1(r *bufio.Reader) (string, error) {
	var rs []rune
	for {
		c, err := r.ReadByte()
		if err != nil {
			return "", noEOF(err)
		}
		if c == 0 {
			return string(rs), nil
		}
		if len(rs) == maxGzipString {
			return "", fmt.Errorf("%w: string longer than %d bytes", errGzipHeader, maxGzipString)
		}
		rs = append(rs, rune(c))
	}
}

// noEOF turns io.EOF inside a structure into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
