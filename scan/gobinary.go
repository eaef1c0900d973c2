package scan

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// goBinaryAnalyzer reads the module build information Go writes into its
// executables (debug/buildinfo, through an io.ReaderAt: only the few
// ranges it needs are read): the modules linked in, the main module, and
// the toolchain's version as the module "stdlib".
type goBinaryAnalyzer struct{}

func (goBinaryAnalyzer) match(f File) bool {
	return f.Regular() && f.Mode&0o111 != 0 && f.Size >= 1024
}

var (
	elfMagic = []byte("\x7fELF")
	// Mach-O (32, 64, both byte orders) and PE.
	otherMagics = [][]byte{{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, {0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe}, []byte("MZ")}
)

func (goBinaryAnalyzer) read(f File, c Content, r *result) error {
	var magic [4]byte
	if _, err := c.ReadAt(magic[:], 0); err != nil {
		return nonEOF(err)
	}
	sr := io.NewSectionReader(c, 0, c.Size())
	switch {
	case bytes.Equal(magic[:], elfMagic):
		switch elfGoNote(c) {
		case elfNotGo:
			return nil
		case elfUnsure:
			// A Go ELF binary has a .go.buildinfo section; checking the
			// section headers first spares reading a large non-Go
			// binary's data segment, which buildinfo would search.
			ef, err := elf.NewFile(sr)
			if err != nil {
				if re := readError(err); re != nil {
					return re
				}
				return nil // not an ELF file we can read: not a Go binary either
			}
			if len(ef.Sections) > 0 && ef.Section(".go.buildinfo") == nil {
				return nil
			}
		}
	case hasMagic(magic[:]):
	default:
		return nil
	}
	bi, err := buildinfo.Read(sr)
	if err != nil {
		if re := readError(err); re != nil {
			return re
		}
		if strings.Contains(err.Error(), "not a Go executable") {
			return nil
		}
		return fmt.Errorf("Go build info: %w", err)
	}
	add := func(name, ver string) {
		r.add(Package{Name: name, Version: ver, Ecosystem: EcosystemGo, Manager: "go-binary", Path: f.Path})
	}
	if v, ok := GoToolchainSemver(bi.GoVersion); ok {
		add("stdlib", v)
		if strings.HasPrefix(bi.Path, "cmd/") {
			// The go command, vet, ...: the toolchain itself.
			add("toolchain", v)
		}
	} else {
		r.note(f.Path, "Go version %q not understood: stdlib not reported", clip(bi.GoVersion))
	}
	if v := bi.Main.Version; bi.Main.Path != "" && v != "" && v != "(devel)" {
		add(bi.Main.Path, strings.TrimPrefix(v, "v"))
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
			if m.Version == "" {
				r.note(f.Path, "module %s replaced by directory %s: not reported", d.Path, m.Path)
				continue
			}
		}
		add(m.Path, strings.TrimPrefix(m.Version, "v"))
	}
	return nil
}

func hasMagic(b []byte) bool {
	for _, m := range otherMagics {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// readError digs a *ReadError out of err (debug/elf and debug/buildinfo
// do not all wrap with %w).
func readError(err error) error {
	for e := err; e != nil; {
		if re, ok := e.(*ReadError); ok {
			return re
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return nil
}

func nonEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var goVersionRE = regexp.MustCompile(`^go([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:(beta|rc)([0-9]+))?$`)

// GoToolchainSemver turns a Go release name as the toolchain writes it
// ("go1.21.3", "go1.21rc2", "go1.20", "go1.22.0 X:boringcrypto") into the
// semantic version OSV records use for stdlib and toolchain ("1.21.3",
// "1.21.0-rc.2", "1.20.0"). Development builds give false.
func GoToolchainSemver(v string) (string, bool) {
	v, _, _ = strings.Cut(v, " ")
	v, _, _ = strings.Cut(v, "+") // go1.21.0+auto
	m := goVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	patch := m[3]
	if patch == "" {
		patch = "0"
	}
	s := m[1] + "." + m[2] + "." + patch
	if m[4] != "" {
		s += "-" + m[4] + "." + m[5]
	}
	return s, true
}

// What the start of an ELF file says about it being a Go binary.
const (
	elfUnsure = iota
	elfGo
	elfNotGo
)

// elfGoNote looks at an ELF file's program headers and notes, which sit
// at its start (one chunk), rather than its section headers, which sit at
// its end: the Go linker writes a "Go" build ID note (type 4) into a
// PT_NOTE segment. With the note it is a Go binary; without it, a
// dynamically linked file (PT_INTERP) is taken not to be one (a Go
// program linked with an empty -buildid and cgo would be missed); a
// static file without it is checked the long way.
func elfGoNote(c Content) int {
	var h [64]byte
	if _, err := c.ReadAt(h[:], 0); err != nil {
		return elfUnsure
	}
	var bo binary.ByteOrder
	switch h[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return elfUnsure
	}
	var phoff uint64
	var phentsize, phnum int
	is64 := h[4] == 2
	switch h[4] {
	case 1:
		phoff, phentsize, phnum = uint64(bo.Uint32(h[28:])), int(bo.Uint16(h[42:])), int(bo.Uint16(h[44:]))
	case 2:
		phoff, phentsize, phnum = bo.Uint64(h[32:]), int(bo.Uint16(h[54:])), int(bo.Uint16(h[56:]))
	default:
		return elfUnsure
	}
	if phnum == 0 || phnum > 256 || phentsize < 32 || phentsize > 128 || phoff > uint64(c.Size()) {
		return elfUnsure
	}
	ph := make([]byte, phnum*phentsize)
	if _, err := c.ReadAt(ph, int64(phoff)); err != nil {
		return elfUnsure
	}
	dynamic := false
	for i := range phnum {
		p := ph[i*phentsize:]
		typ := bo.Uint32(p)
		var off, size uint64
		if is64 {
			off, size = bo.Uint64(p[8:]), bo.Uint64(p[32:])
		} else {
			off, size = uint64(bo.Uint32(p[4:])), uint64(bo.Uint32(p[16:]))
		}
		switch typ {
		case uint32(elf.PT_INTERP):
			dynamic = true
		case uint32(elf.PT_NOTE):
			if size == 0 || size > 64<<10 || off > uint64(c.Size()) {
				continue
			}
			notes := make([]byte, size)
			if _, err := c.ReadAt(notes, int64(off)); err != nil {
				continue
			}
			if hasGoNote(notes, bo) {
				return elfGo
			}
		}
	}
	if dynamic {
		return elfNotGo
	}
	return elfUnsure
}

// hasGoNote scans ELF notes for the Go build ID note.
func hasGoNote(b []byte, bo binary.ByteOrder) bool {
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		nameEnd := 12 + (uint64(namesz)+3)&^3
		end := nameEnd + (uint64(descsz)+3)&^3
		if end > uint64(len(b)) {
			return false
		}
		// The Go linker writes the name "Go\x00\x00" (namesz 4), type 4.
		if (namesz == 3 || namesz == 4) && typ == 4 && string(b[12:15]) == "Go\x00" {
			return true
		}
		b = b[end:]
	}
	return false
}
