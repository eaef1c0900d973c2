package chunkstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

const testMaxRaw = 64 << 10

// buildPack returns an in-memory sealed pack holding the given chunks, stored
// raw, and its entries.
func buildPack(name string, chunks ...[]byte) ([]byte, []PackEntry) {
	pack := packHeader()
	var entries []PackEntry
	for _, c := range chunks {
		h := recordHeader{rawLen: uint32(len(c)), storedLen: uint32(len(c)), id: sha256.Sum256(c), dataCRC: crc32.Checksum(c, crcTable())}
		var hdr [recordHeaderLen]byte
		h.encode(&hdr)
		pack = append(pack, hdr[:]...)
		entries = append(entries, PackEntry{ID: h.id, Loc: Location{Pack: name, Offset: int64(len(pack)), StoredLen: h.storedLen, RawLen: h.rawLen}})
		pack = append(pack, c...)
	}
	return append(pack, encodeTrailer(entries)...), entries
}

func TestTrailerRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		chunks [][]byte
	}{
		{"no chunks", nil},
		{"one chunk", [][]byte{[]byte("hello")}},
		{"several", [][]byte{randomBytes(1, 100), randomBytes(2, 5000), {0}, randomBytes(3, testMaxRaw)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pack, want := buildPack("p1", tt.chunks...)
			got, err := parseTrailer(pack, "p1", testMaxRaw)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
				}
			}
			// An unsealed pack (no trailer) scans to the same entries.
			body := pack[:len(pack)-len(want)*entryLen-footerLen]
			scanned, end, err := scanRecords(bytes.NewReader(body), int64(len(body)), "p1", testMaxRaw)
			if err != nil {
				t.Fatal(err)
			}
			if end != int64(len(body)) || len(scanned) != len(want) {
				t.Fatalf("scan: %d entries ending at %d, want %d at %d", len(scanned), end, len(want), len(body))
			}
		})
	}
}

func TestParseTrailerRejects(t *testing.T) {
	good, _ := buildPack("p", randomBytes(1, 100), randomBytes(2, 200))
	n := len(good)
	entriesOff := n - footerLen - 2*entryLen
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		pack []byte
	}{
		{"empty", nil},
		{"header only", packHeader()},
		{"truncated", good[:n-1]},
		{"bad end magic", mutate(func(b []byte) []byte { b[n-1] ^= 1; return b })},
		{"bad pack magic", mutate(func(b []byte) []byte { b[0] ^= 1; return b })},
		{"bad version", mutate(func(b []byte) []byte { b[4] = 2; return b })},
		{"entries crc", mutate(func(b []byte) []byte { b[entriesOff] ^= 1; return b })},
		{"entries length too large", mutate(func(b []byte) []byte { b[n-footerLen+3] = 0x7f; return b })},
		{"entries length not a multiple", mutate(func(b []byte) []byte { b[n-footerLen]++; return b })},
		{"extra byte before trailer", func() []byte {
			b := bytes.Clone(good[:entriesOff])
			b = append(b, 0)
			return append(b, good[entriesOff:]...)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseTrailer(tt.pack, "p", testMaxRaw); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseTrailer: %v, want ErrCorrupt", err)
			}
		})
	}
	// Entries with a consistent CRC but bad content.
	badEntries := []struct {
		name string
		e    PackEntry
	}{
		{"offset", PackEntry{Loc: Location{Offset: packHeaderLen + recordHeaderLen + 1, StoredLen: 10, RawLen: 10}}},
		{"stored > raw", PackEntry{Loc: Location{Offset: packHeaderLen + recordHeaderLen, StoredLen: 11, RawLen: 10, Compressed: true}}},
		{"raw too large", PackEntry{Loc: Location{Offset: packHeaderLen + recordHeaderLen, StoredLen: 10, RawLen: testMaxRaw + 1, Compressed: true}}},
		{"zero length", PackEntry{Loc: Location{Offset: packHeaderLen + recordHeaderLen}}},
	}
	for _, tt := range badEntries {
		t.Run("entry "+tt.name, func(t *testing.T) {
			pack := append(packHeader(), make([]byte, recordHeaderLen+10)...)
			pack = append(pack, encodeTrailer([]PackEntry{tt.e})...)
			if _, err := parseTrailer(pack, "p", testMaxRaw); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseTrailer: %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzParseTrailer feeds arbitrary packs to the trailer parser: it must not
// panic, must reject with ErrCorrupt, and whatever it accepts must be
// consistent and re-encode to the same bytes.
func FuzzParseTrailer(f *testing.F) {
	good, _ := buildPack("p", randomBytes(1, 100), randomBytes(2, 3000), []byte("x"))
	f.Add(good)
	empty, _ := buildPack("p")
	f.Add(empty)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add(packHeader())
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseTrailer(data, "p", testMaxRaw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(entries) > len(data)/entryLen {
			t.Fatalf("%d entries from %d bytes", len(entries), len(data))
		}
		trailer := encodeTrailer(entries)
		if !bytes.HasSuffix(data, trailer) {
			t.Fatal("accepted trailer does not re-encode to the same bytes")
		}
		end := int64(len(data) - len(trailer))
		for _, e := range entries {
			if e.Loc.Offset < packHeaderLen+recordHeaderLen || e.Loc.Offset+int64(e.Loc.StoredLen) > end {
				t.Fatalf("entry %+v outside the records [0, %d)", e.Loc, end)
			}
		}
		// Scanning must not panic either.
		_, _, _ = scanRecords(bytes.NewReader(data), int64(len(data)), "p", testMaxRaw)
	})
}

func TestScanRecordsStopsAtDamage(t *testing.T) {
	chunks := [][]byte{randomBytes(1, 100), randomBytes(2, 200), randomBytes(3, 300)}
	pack, entries := buildPack("p", chunks...)
	body := pack[:len(pack)-len(entries)*entryLen-footerLen]
	second := entries[1].Loc.Offset - recordHeaderLen
	tests := []struct {
		name      string
		data      []byte
		wantCount int
	}{
		{"intact", body, 3},
		{"second data byte", func() []byte { b := bytes.Clone(body); b[entries[1].Loc.Offset] ^= 1; return b }(), 1},
		{"second header length", func() []byte { b := bytes.Clone(body); b[second+8] ^= 1; return b }(), 1},
		{"torn third", body[:len(body)-1], 2},
		{"oversized record", func() []byte {
			var hdr [recordHeaderLen]byte
			recordHeader{rawLen: testMaxRaw + 1, storedLen: testMaxRaw + 1}.encode(&hdr)
			return append(bytes.Clone(body), hdr[:]...)
		}(), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, end, err := scanRecords(bytes.NewReader(tt.data), int64(len(tt.data)), "p", testMaxRaw)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.wantCount {
				t.Fatalf("%d records, want %d", len(got), tt.wantCount)
			}
			wantEnd := int64(packHeaderLen)
			if tt.wantCount > 0 {
				last := entries[tt.wantCount-1].Loc
				wantEnd = last.Offset + int64(last.StoredLen)
			}
			if end != wantEnd {
				t.Fatalf("end %d, want %d", end, wantEnd)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	id := ID(sha256.Sum256([]byte("chunk")))
	tests := []struct {
		in      string
		want    ID
		wantErr bool
	}{
		{id.String(), id, false},
		{strings.ToUpper(id.String()), id, false},
		{"", ID{}, true},
		{id.String()[:63], ID{}, true},
		{id.String() + "0", ID{}, true},
		{"zz" + id.String()[2:], ID{}, true},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseID(%q) = %v, %v; want %v, err %t", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if len(id.String()) != 64 || strings.ToLower(id.String()) != id.String() {
		t.Errorf("String() = %q", id.String())
	}
}
