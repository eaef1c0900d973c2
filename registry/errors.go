package registry

import "errors"

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
)
