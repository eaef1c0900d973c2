package registry

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/chunkyard/chunkyard/refgraph"
)

// Error classes of the registry service. The HTTP layer maps each to its
// OCI error code once (ocihttp); wrap them with %w to add detail.
var (
	ErrBlobUnknown         = errors.New("blob unknown to registry")
	ErrBlobUploadInvalid   = errors.New("blob upload invalid")
	ErrBlobUploadUnknown   = errors.New("blob upload unknown to registry")
	ErrDigestInvalid       = errors.New("provided digest did not match uploaded content")
	ErrManifestBlobUnknown = errors.New("manifest references a manifest or blob unknown to registry")
	ErrManifestInvalid     = errors.New("manifest invalid")
	ErrManifestUnknown     = errors.New("manifest unknown to registry")
	ErrNameInvalid         = errors.New("invalid repository name")
	ErrNameUnknown         = errors.New("repository name not known to registry")
	ErrSizeInvalid         = errors.New("provided length did not match content length")
	ErrTooLarge            = errors.New("content too large")
	ErrRangeInvalid        = errors.New("requested range not satisfiable")
	ErrUnsupported         = errors.New("the operation is unsupported")
	ErrTagInvalid          = errors.New("invalid tag")
	ErrPaginationInvalid   = errors.New("invalid number of results requested")

	// ErrInsufficientStorage: the disk under the data dir is full
	// (ENOSPC, EDQUOT). Nothing of the request was stored; what the
	// registry had, it still has and serves.
	ErrInsufficientStorage = errors.New("insufficient storage: the registry's disk is full; the request was not stored")
	// ErrStorageFailure: the disk under the data dir failed an operation
	// (an I/O error), or the index did (refgraph.ErrIndexFailed: then
	// nothing more is stored until the server restarts).
	ErrStorageFailure = errors.New("storage failure: the registry's disk failed; the request was not stored")
)

// guard is deferred by the service's methods: it classifies a storage
// fault in *err (storageFault) and turns the panic of a failed index into
// ErrStorageFailure (any other panic goes on). Locks held by the index and
// the service are released by their own defers as the panic unwinds.
func guard(err *error) {
	if r := recover(); r != nil {
		e, ok := r.(error)
		if !ok || !errors.Is(e, refgraph.ErrIndexFailed) {
			panic(r)
		}
		*err = e
	}
	*err = storageFault(*err)
}

// storageFault wraps a full disk's error with ErrInsufficientStorage and
// an I/O error or a failed index with ErrStorageFailure; other errors pass.
func storageFault(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrInsufficientStorage), errors.Is(err, ErrStorageFailure):
		return err
	case errors.Is(err, refgraph.ErrIndexFailed):
		// Even when a full disk failed it, the index takes nothing more
		// until a restart: a failure, not a request to retry later.
		return fmt.Errorf("%w: %w", ErrStorageFailure, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", ErrInsufficientStorage, err)
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS), errors.Is(err, refgraph.ErrIndexFailed):
		return fmt.Errorf("%w: %w", ErrStorageFailure, err)
	}
	return err
}

// survive is deferred by the service's background goroutines (converter,
// scanner, re-matcher): the panic of a failed index (see
// refgraph.ErrIndexFailed) ends the goroutine's work with a log line
// instead of the process; the server stops on Graph.Failed. Any other
// panic goes on.
func (s *Service) survive(what string) {
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(error); ok && errors.Is(e, refgraph.ErrIndexFailed) {
		s.log.Error(what+" stopped: the index failed", "err", e)
		return
	}
	panic(r)
}
