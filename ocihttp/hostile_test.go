package ocihttp_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// rawRequest sends a request line as is (no client-side cleaning or
// escaping) and returns the status and the error code of the answer.
func rawRequest(t *testing.T, host, method, target string) (int, string, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, host)
	res, err := http.ReadResponse(bufioReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var eb struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	code := ""
	if json.Unmarshal(body, &eb) == nil && len(eb.Errors) > 0 {
		code = eb.Errors[0].Code
	}
	return res.StatusCode, code, res.Header
}

// Hostile URLs get the spec's error codes: never a bare NOT_FOUND, never
// a redirect, never a path outside the data dir.
func TestHostileURLs(t *testing.T) {
	reg := newTestRegistry(t)
	d := "sha256:" + strings.Repeat("a", 64)
	upload := strings.Repeat("0", 32)
	tests := []struct {
		method, target string
		status         int
		code           string
	}{
		{"GET", "/v2/../../../../etc/passwd", 400, "NAME_INVALID"},
		{"GET", "/v2/a/../../etc/passwd/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a/blobs/" + d + "/../../x", 400, "NAME_INVALID"},
		{"GET", "/v2/a/./b/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/a//b/manifests/latest", 400, "NAME_INVALID"},
		{"GET", "/v2/a/manifests/..%2f..%2fetc%2fpasswd", 400, "TAG_INVALID"},
		{"GET", "/v2/a/manifests/sha256:..%2f..%2fetc", 400, "DIGEST_INVALID"},
		{"PUT", "/v2/a/manifests/a%2Fb", 400, "TAG_INVALID"},
		{"DELETE", "/v2/a/manifests/a%2Fb", 400, "TAG_INVALID"},
		{"GET", "/v2/a/blobs/..%2f..%2fetc%2fpasswd", 400, "DIGEST_INVALID"},
		{"GET", "/v2/a/blobs/uploads/..%2f..%2fetc%2fpasswd", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH", "/v2/a/blobs/uploads/..%2f..%2fetc%2fpasswd", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PUT", "/v2/a/blobs/uploads/..%2f..%2fetc%2fpasswd?digest=" + d, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"DELETE", "/v2/a/blobs/uploads/..%2f..%2fetc%2fpasswd", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH", "/v2/a/blobs/uploads/" + upload + "/../../x", 400, "NAME_INVALID"},
		{"GET", "/v2/a%2F..%2Fb/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/A/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a/tags/list?n=-1", 400, "PAGINATION_NUMBER_INVALID"},
		{"GET", "/v2/nothing/here/at/all", 404, "UNSUPPORTED"},
		{"GET", "/v2/a/referrers/not-a-digest", 400, "DIGEST_INVALID"},
	}
	for _, tt := range tests {
		status, code, h := rawRequest(t, reg.host, tt.method, tt.target)
		if status != tt.status || code != tt.code {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.target, status, code, tt.status, tt.code)
		}
		if loc := h.Get("Location"); status/100 == 3 || (status >= 400 && loc != "") {
			t.Errorf("%s %s: redirect or Location %q", tt.method, tt.target, loc)
		}
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
