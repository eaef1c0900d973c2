package registry

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestYielderPausesForPushes: a conversion's reader pauses while an upload
// is in flight, up to the budget, and not at all when nothing is pushed.
func TestYielderPausesForPushes(t *testing.T) {
	s := &Service{convert: ConvertOptions{MaxYield: 200 * time.Millisecond}}
	y := s.newYielder(context.Background())
	data := strings.Repeat("x", 3<<20)

	if _, err := io.Copy(io.Discard, y.reader(io.NopCloser(strings.NewReader(data)))); err != nil {
		t.Fatal(err)
	}
	if p := y.paused.Load(); p != 0 {
		t.Fatalf("paused %v with no push", time.Duration(p))
	}
	end := s.pushes.begin()
	if _, err := io.Copy(io.Discard, y.reader(io.NopCloser(strings.NewReader(data)))); err != nil {
		t.Fatal(err)
	}
	end()
	if p := time.Duration(y.paused.Load()); p != 200*time.Millisecond {
		t.Fatalf("paused %v during a push, want the whole budget", p)
	}
	// The budget is spent: no more pausing for this conversion.
	end = s.pushes.begin()
	defer end()
	io.Copy(io.Discard, y.reader(io.NopCloser(strings.NewReader(data))))
	if p := time.Duration(y.paused.Load()); p != 200*time.Millisecond {
		t.Fatalf("paused %v past the budget", p)
	}
}
