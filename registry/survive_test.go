package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/chunkyard/chunkyard/refgraph"
)

// TestSurviveIndexFailure: a background goroutine that meets the panic of
// a failed index ends with a log line; any other panic goes on.
func TestSurviveIndexFailure(t *testing.T) {
	s := &Service{log: slog.New(slog.DiscardHandler)}
	ran := false
	func() {
		defer s.survive("test")
		ran = true
		panic(fmt.Errorf("%w: disk full", refgraph.ErrIndexFailed))
	}()
	if !ran {
		t.Fatal("never ran")
	}
	other := errors.New("a bug")
	defer func() {
		if r := recover(); r != other {
			t.Fatalf("recovered %v, want the other panic to go on", r)
		}
	}()
	func() {
		defer s.survive("test")
		panic(other)
	}()
	t.Fatal("the other panic was swallowed")
}
