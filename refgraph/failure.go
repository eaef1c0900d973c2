package refgraph

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// ErrIndexFailed means Pebble met an error it cannot go on from: a write
// or fsync of its log or manifest failed (a full disk, an I/O error). It
// stops the committing goroutine with a panic whose value is an error
// wrapping ErrIndexFailed; every later write does the same, while reads
// still work. What was acknowledged is durable; the process must restart
// (once the disk is fixed) to write again. Graph.Failed reports it, so
// that a server can stop, and callers that want an error instead of the
// panic recover it with RecoverFailure.
var ErrIndexFailed = errors.New("refgraph: index failed")

// failure records the first fatal error Pebble reported.
type failure struct {
	once sync.Once
	ch   chan struct{}
	err  error
}

func newFailure() *failure { return &failure{ch: make(chan struct{})} }

func (f *failure) set(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.ch)
	})
}

// Failed is closed when the index has failed (see ErrIndexFailed).
func (g *Graph) Failed() <-chan struct{} { return g.fail.ch }

// Err returns why the index failed (wrapping ErrIndexFailed), nil while
// it has not.
func (g *Graph) Err() error {
	select {
	case <-g.fail.ch:
		return g.fail.err
	default:
		return nil
	}
}

// RecoverFailure turns the panic of a failed index into an error: deferred
// by a caller of Graph's writers, it stores the error in *err and returns;
// any other panic goes on.
func RecoverFailure(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(error); ok && errors.Is(e, ErrIndexFailed) {
		*err = e
		return
	}
	panic(r)
}

// openPebble opens the database, with a fatal error during the opening
// returned as an error.
func openPebble(dir string, po *pebble.Options) (db *pebble.DB, err error) {
	defer RecoverFailure(&err)
	return pebble.Open(dir, po)
}

// pebbleLogger sends Pebble's messages to slog; a fatal one fails the
// index (see ErrIndexFailed).
type pebbleLogger struct {
	log  *slog.Logger
	fail *failure
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("index failed; it takes no more writes until a restart", "err", msg, "component", "pebble")
	err := fmt.Errorf("%w: %s", ErrIndexFailed, msg)
	l.fail.set(err)
	panic(err) // Pebble's Fatalf must not return
}
