package s3

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/aws/smithy-go/middleware"
)

// requestErrors counts the requests that failed, by operation (GetObject,
// PutObject, ...), after the retries: what a metric of S3 errors shows.
// An object that does not exist (a Stat or Delete of a pack gone) is an
// answer, not an error, and is not counted.
type requestErrors struct {
	mu sync.Mutex
	by map[string]*atomic.Int64
}

func (e *requestErrors) add(op string) {
	e.mu.Lock()
	n, ok := e.by[op]
	if !ok {
		if e.by == nil {
			e.by = map[string]*atomic.Int64{}
		}
		n = new(atomic.Int64)
		e.by[op] = n
	}
	e.mu.Unlock()
	n.Add(1)
}

// middleware counts each operation's final error, in the Initialize step
// (outside the retry loop).
func (e *requestErrors) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("chunkyardErrorCount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil && !isNotFound(err) && ctx.Err() == nil {
				e.add(middleware.GetOperationName(ctx))
			}
			return out, md, err
		}), middleware.After)
}

// RequestErrors returns how many requests failed since New, by S3
// operation (after retries; "not found" answers are not failures).
func (b *Backend) RequestErrors() map[string]int64 {
	b.errors.mu.Lock()
	defer b.errors.mu.Unlock()
	out := make(map[string]int64, len(b.errors.by))
	for op, n := range maps.All(b.errors.by) {
		out[op] = n.Load()
	}
	return out
}
