package codec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Encoder helpers reach klauspost output classes this build does not link
// (one build links one klauspost/compress version). A helper
// is a small program, a nested module under helpers/ pinning its own
// version, named HelperPrefix+NAME; it prints its classes on `version`
// and encodes stdin to stdout on `encode PARAMS-JSON`, writing only what
// the encoder itself writes (raw deflate for klauspost gzip, pgzip's
// member with its default header, a zstd frame). The gzip header and
// trailer stay this package's, so a helper knows nothing of recipes.

// HelperPrefix starts the file name of every encoder helper.
const HelperPrefix = "chunkyard-codec-"

// helperProtocol is the protocol version this package speaks.
const helperProtocol = 1

// helper is one loaded helper program.
type helper struct {
	path    string
	classes map[string]string // encoder -> output class
}

// helperParams is an encode's parameters, as the helper takes them.
type helperParams struct {
	Encoder     string
	Level       int
	BlockSize   int   `json:",omitempty"`
	Concurrency int   `json:",omitempty"`
	Checksum    bool  `json:",omitempty"`
	WindowSize  int   `json:",omitempty"`
	ContentSize int64 `json:",omitempty"`
}

var loaded struct {
	sync.RWMutex
	list   []*helper
	probed []HelperInfo // every helper LoadHelpers asked, with what it said
}

// HelperInfo is a helper program found by LoadHelpers and the output
// classes it said it writes (none: it cannot write anything here).
type HelperInfo struct {
	Path    string
	Classes map[string]string // encoder -> output class
}

// ProbedHelpers lists the helpers LoadHelpers found, in the order found.
func ProbedHelpers() []HelperInfo {
	loaded.RLock()
	defer loaded.RUnlock()
	return slices.Clone(loaded.probed)
}

// LoadHelpers finds the encoder helpers in dir, asks each for its output
// classes and makes them available to Find and NewWriter, after this
// build's own encoders. It returns the classes added, as "encoder class"
// strings. A helper that fails to answer, or speaks another protocol, is
// an error; a class this build has itself, or that an earlier helper
// brought, is skipped. A missing dir is not an error.
func LoadHelpers(ctx context.Context, dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, HelperPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("codec: looking for helpers in %s: %w", dir, err)
	}
	var added []string
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			continue
		}
		h, err := probeHelper(ctx, p)
		if err != nil {
			return added, err
		}
		info := HelperInfo{Path: p, Classes: map[string]string{}}
		for enc, class := range h.classes {
			info.Classes[enc] = class
		}
		loaded.Lock()
		loaded.probed = append(loaded.probed, info)
		loaded.Unlock()
		added = append(added, addHelper(h)...)
	}
	return added, nil
}

func probeHelper(ctx context.Context, path string) (*helper, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("codec: helper %s version: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	var v struct {
		Protocol int
		Classes  map[string]string
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("codec: helper %s version: %w", path, err)
	}
	if v.Protocol != helperProtocol {
		return nil, fmt.Errorf("codec: helper %s speaks protocol %d, want %d", path, v.Protocol, helperProtocol)
	}
	return &helper{path: path, classes: v.Classes}, nil
}

// addHelper registers the classes of h that nothing registered has.
func addHelper(h *helper) []string {
	loaded.Lock()
	defer loaded.Unlock()
	var added []string
	for enc, class := range h.classes {
		if ownClass(enc, class) || slices.Contains(classesLocked(enc), class) {
			delete(h.classes, enc)
			continue
		}
		added = append(added, enc+" "+class)
	}
	if len(h.classes) > 0 {
		loaded.list = append(loaded.list, h)
	}
	slices.Sort(added)
	return added
}

// resetHelpers forgets every helper (tests).
func resetHelpers() {
	loaded.Lock()
	loaded.list = nil
	loaded.Unlock()
}

// classesOf lists the output classes available for an encoder: this
// build's own first, then the helpers' in the order they were loaded.
func classesOf(encoder string) []string {
	loaded.RLock()
	defer loaded.RUnlock()
	return classesLocked(encoder)
}

func classesLocked(encoder string) []string {
	var out []string
	if v, ok := versionOf(encoder); ok {
		out = append(out, v)
	}
	for _, h := range loaded.list {
		if c, ok := h.classes[encoder]; ok {
			out = append(out, c)
		}
	}
	return out
}

// helperFor returns the helper that writes enc's class, nil if this
// build writes it itself, and ErrUnavailable if nothing does.
func helperFor(enc Encoding) (*helper, error) {
	if ownClass(enc.Encoder, enc.Version) {
		return nil, nil
	}
	loaded.RLock()
	defer loaded.RUnlock()
	for _, h := range loaded.list {
		if h.classes[enc.Encoder] == enc.Version {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: %s output class %q", ErrUnavailable, enc.Encoder, enc.Version)
}

// helperWriter feeds a running helper's stdin and copies its stdout to
// the destination.
type helperWriter struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan struct{} // closed when stdout is drained
	copyErr error         // the destination's error, set before done
	stderr  *tailBuffer
	closed  bool
}

// start runs the helper with p, writing its output to w.
func (h *helper) start(w io.Writer, p helperParams) (*helperWriter, error) {
	arg, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	hw := &helperWriter{
		cmd:    exec.Command(h.path, "encode", string(arg)),
		done:   make(chan struct{}),
		stderr: &tailBuffer{max: 4 << 10},
	}
	hw.cmd.Stderr = hw.stderr
	stdout, err := hw.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("codec: helper %s: %w", h.path, err)
	}
	if hw.stdin, err = hw.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("codec: helper %s: %w", h.path, err)
	}
	if err := hw.cmd.Start(); err != nil {
		return nil, fmt.Errorf("codec: starting helper %s: %w", h.path, err)
	}
	go func() {
		defer close(hw.done)
		buf := make([]byte, 64<<10)
		if _, err := io.CopyBuffer(w, stdout, buf); err != nil {
			hw.copyErr = err
			hw.cmd.Process.Kill() // no reader for its output: stop it
			io.Copy(io.Discard, stdout)
		}
	}()
	return hw, nil
}

func (hw *helperWriter) Write(p []byte) (int, error) {
	if hw.closed {
		return 0, errors.New("codec: write after close")
	}
	n, err := hw.stdin.Write(p)
	if err != nil {
		return n, hw.fail(err)
	}
	return n, nil
}

// Close ends the input, waits for the helper and tells how it ended.
func (hw *helperWriter) Close() error {
	if hw.closed {
		return nil
	}
	hw.closed = true
	hw.stdin.Close()
	<-hw.done
	return hw.fail(hw.cmd.Wait())
}

// fail explains err, preferring the destination's error, then what the
// helper said on stderr.
func (hw *helperWriter) fail(err error) error {
	if err == nil {
		return nil
	}
	if !hw.closed {
		hw.closed = true
		hw.stdin.Close()
		hw.cmd.Process.Kill()
		<-hw.done
		hw.cmd.Wait()
	}
	if hw.copyErr != nil {
		return hw.copyErr
	}
	return fmt.Errorf("codec: helper %s: %w: %s", filepath.Base(hw.cmd.Path), err, strings.TrimSpace(hw.stderr.String()))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Available reports whether this build or a loaded helper writes
// encoder's output class.
func Available(encoder, class string) bool {
	_, err := helperFor(Encoding{Encoder: encoder, Version: class})
	return err == nil
}
