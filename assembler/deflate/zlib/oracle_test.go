package zlib

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// wantZlib is the zlib release class the encoder reproduces; the oracle
// must run one of these (they all write the same deflate bytes, see doc.go).
var wantZlib = []string{"1.2.11", "1.2.12", "1.2.13", "1.3", "1.3.1"}

// oracle is a long-lived python3 running testdata/oracle.py: real zlib.
type oracle struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	version string
}

var (
	oracleOnce sync.Once
	theOracle  *oracle
	oracleErr  error
)

// getOracle starts (once per test binary) the Python zlib oracle. python3
// is part of every machine this project builds on: its absence fails.
func getOracle(t testing.TB) *oracle {
	t.Helper()
	oracleOnce.Do(func() {
		cmd := exec.Command("python3", "testdata/oracle.py")
		in, err := cmd.StdinPipe()
		if err != nil {
			oracleErr = err
			return
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			oracleErr = err
			return
		}
		if err := cmd.Start(); err != nil {
			oracleErr = err
			return
		}
		o := &oracle{cmd: cmd, in: in, out: bufio.NewReader(out)}
		v, err := o.out.ReadString('\n')
		if err != nil {
			oracleErr = err
			return
		}
		o.version = strings.TrimSpace(v)
		theOracle = o
	})
	if oracleErr != nil {
		t.Fatalf("python3 zlib oracle: %v", oracleErr)
	}
	ok := false
	for _, v := range wantZlib {
		if theOracle.version == v {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("python3 runs zlib %s, not one of the releases this encoder reproduces (%v)", theOracle.version, wantZlib)
	}
	return theOracle
}

// deflate returns real zlib's raw deflate of data at level, fed in chunks
// of chunk bytes (0: all at once).
func (o *oracle) deflate(t testing.TB, data []byte, level, chunk int) []byte {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var h [9]byte
	h[0] = byte(level)
	binary.LittleEndian.PutUint32(h[1:], uint32(chunk))
	binary.LittleEndian.PutUint32(h[5:], uint32(len(data)))
	if _, err := o.in.Write(h[:]); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	if _, err := o.in.Write(data); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	var n [4]byte
	if _, err := io.ReadFull(o.out, n[:]); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	res := make([]byte, binary.LittleEndian.Uint32(n[:]))
	if _, err := io.ReadFull(o.out, res); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	return res
}

// encode is this package's raw deflate of data at level, written in
// pieces of chunk bytes (0: one Write).
func encode(t testing.TB, data []byte, level, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for i := 0; i < len(data); i += chunk {
		if _, err := w.Write(data[i:min(len(data), i+chunk)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// firstDiff is the index of the first differing byte, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
