package ocihttp

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/chunkyard/chunkyard/registry"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		header        string
		size          int64
		off, length   int64
		partial, fail bool
	}{
		{"", 100, 0, 100, false, false},
		{"bytes=0-9", 100, 0, 10, true, false},
		{"bytes=90-", 100, 90, 10, true, false},
		{"bytes=90-200", 100, 90, 10, true, false},
		{"bytes=-5", 100, 95, 5, true, false},
		{"bytes=-500", 100, 0, 100, true, false},
		{"bytes=100-", 100, 0, 0, false, true},
		{"bytes=5-4", 100, 0, 0, false, true},
		{"bytes=0-1,5-6", 100, 0, 0, false, true},
		{"items=0-1", 100, 0, 0, false, true},
		{"bytes=x-1", 100, 0, 0, false, true},
		{"bytes=-0", 100, 0, 0, false, true},
	}
	for _, tt := range tests {
		off, length, partial, err := parseRange(tt.header, tt.size)
		if tt.fail {
			if !errors.Is(err, registry.ErrRangeInvalid) {
				t.Errorf("%q: err = %v, want ErrRangeInvalid", tt.header, err)
			}
			continue
		}
		if err != nil || off != tt.off || length != tt.length || partial != tt.partial {
			t.Errorf("%q: got %d,%d,%v,%v want %d,%d,%v", tt.header, off, length, partial, err, tt.off, tt.length, tt.partial)
		}
	}
}

func TestContentRangeStart(t *testing.T) {
	tests := []struct {
		header string
		length int64
		want   int64
		fail   bool
	}{
		{"", 10, -1, false},
		{"0-9", 10, 0, false},
		{"10-19", 10, 10, false},
		{"bytes 10-19/*", 10, 10, false},
		{"10-19", 5, 0, true},
		{"9-0", 10, 0, true},
		{"a-b", 10, 0, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("PATCH", "/", nil)
		r.ContentLength = tt.length
		if tt.header != "" {
			r.Header.Set("Content-Range", tt.header)
		}
		got, err := contentRangeStart(r)
		if tt.fail != (err != nil) || (!tt.fail && got != tt.want) {
			t.Errorf("%q: got %d, %v", tt.header, got, err)
		}
	}
}
