package osv

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Record is a parsed record and the bytes it was parsed from.
type Record struct {
	Vuln *Vulnerability
	Raw  []byte
	// Name says where it came from: a file path or a zip entry.
	Name string
}

// Handler receives records as a reader finds them. Bad is called for a
// record that does not parse (the read goes on); Need, if set, is asked
// before a record listed in a modified_id.csv is read, with its
// modification time, and the record is skipped when it says false.
type Handler struct {
	Record func(Record) error
	Bad    func(name string, err error)
	Need   func(id string, modified time.Time) bool
}

func (h Handler) bad(name string, err error) {
	if h.Bad != nil {
		h.Bad(name, err)
	}
}

// ReadPath reads OSV records from path: a JSON file of one record, a zip
// of records (osv.dev's all.zip: one <ID>.json per entry), or a
// directory. In a directory, if it has a modified_id.csv (osv.dev's
// bucket layout), only the records it lists that Need asks for are read,
// from <dir>/<ID>.json or <dir>/<Ecosystem>/<ID>.json; otherwise every
// *.json below it is read, and every *.zip.
func ReadPath(ctx context.Context, path string, h Handler) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("osv: %w", err)
	}
	if !st.IsDir() {
		return readFile(ctx, path, h)
	}
	csv := filepath.Join(path, "modified_id.csv")
	if f, err := os.Open(csv); err == nil {
		defer f.Close()
		return readIncremental(ctx, path, f, h)
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".zip")) {
			return nil
		}
		return readFile(ctx, p, h)
	})
}

func readFile(ctx context.Context, path string, h Handler) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("osv: %w", err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".zip") {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("osv: %w", err)
		}
		return ReadZip(ctx, f, st.Size(), h)
	}
	return readOne(f, path, h)
}

// readOne reads one JSON record of at most maxRecord bytes.
func readOne(r io.Reader, name string, h Handler) error {
	data, err := io.ReadAll(io.LimitReader(r, maxRecord+1))
	if err != nil {
		return fmt.Errorf("osv: reading %s: %w", name, err)
	}
	v, err := Parse(data)
	if err != nil {
		h.bad(name, err)
		return nil
	}
	return h.Record(Record{Vuln: v, Raw: data, Name: name})
}

// ReadZip reads every *.json entry of a zip of records.
func ReadZip(ctx context.Context, r io.ReaderAt, size int64, h Handler) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("osv: reading zip: %w", err)
	}
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			h.bad(f.Name, err)
			continue
		}
		err = readOne(rc, f.Name, h)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ModifiedID is one line of osv.dev's modified_id.csv.
type ModifiedID struct {
	Modified  time.Time
	Ecosystem string // in the top-level file; "" in a per-ecosystem one
	ID        string
}

// ParseModifiedIDs reads a modified_id.csv: no header, one
// "<RFC 3339 time>,<ID>" or "<time>,<Ecosystem>/<ID>" per line (times with
// or without fractional seconds).
func ParseModifiedIDs(r io.Reader, fn func(ModifiedID) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		ts, id, ok := strings.Cut(s, ",")
		if !ok || id == "" {
			return fmt.Errorf("osv: modified_id.csv line %d: %q is not <time>,<id>", line, s)
		}
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return fmt.Errorf("osv: modified_id.csv line %d: %w", line, err)
		}
		m := ModifiedID{Modified: t, ID: id}
		if eco, rest, ok := strings.Cut(id, "/"); ok {
			m.Ecosystem, m.ID = eco, rest
		}
		if m.ID == "" || strings.ContainsAny(m.ID, `/\`) || m.ID == "." || m.ID == ".." || strings.ContainsAny(m.Ecosystem, `\`) || m.Ecosystem == ".." {
			return fmt.Errorf("osv: modified_id.csv line %d: bad id %q", line, id)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("osv: modified_id.csv line %d: %w", line+1, err)
	}
	return nil
}

func readIncremental(ctx context.Context, dir string, csv io.Reader, h Handler) error {
	return ParseModifiedIDs(csv, func(m ModifiedID) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if h.Need != nil && !h.Need(m.ID, m.Modified) {
			return nil
		}
		p := filepath.Join(dir, m.Ecosystem, m.ID+".json")
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			h.bad(p, fmt.Errorf("listed in modified_id.csv but missing"))
			return nil
		}
		if err != nil {
			return fmt.Errorf("osv: %w", err)
		}
		defer f.Close()
		return readOne(f, p, h)
	})
}
