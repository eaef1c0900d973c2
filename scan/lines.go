package scan

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// lineReader reads a text file line by line with a cap on a line's
// length, so that a crafted file costs no more memory than the cap.
type lineReader struct {
	br   *bufio.Reader
	line int
}

func newLineReader(c Content, maxLine int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(io.NewSectionReader(c, 0, c.Size()), maxLine)}
}

// next returns the next line without its end of line, valid until the
// next call. A line longer than the cap comes back empty, with long set. At the end it returns io.EOF.
func (l *lineReader) next() (line []byte, long bool, err error) {
	b, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Skip the rest of the line; its bytes are gone with the buffer.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = l.br.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return nil, false, err
		}
		l.line++
		return nil, true, nil
	}
	if err == io.EOF && len(b) > 0 {
		err = nil
	}
	if err != nil {
		return nil, false, err
	}
	l.line++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, long, nil
}
