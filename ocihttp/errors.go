package ocihttp

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/chunkyard/chunkyard/registry"
)

// errorCode is one OCI error code with its HTTP status.
type errorCode struct {
	class  error
	code   string
	status int
}

// errorCodes maps the registry's error classes to the distribution-spec's
// codes, once. The first class that matches wins.
var errorCodes = []errorCode{
	{registry.ErrBlobUnknown, "BLOB_UNKNOWN", http.StatusNotFound},
	{registry.ErrBlobUploadInvalid, "BLOB_UPLOAD_INVALID", http.StatusBadRequest},
	{registry.ErrBlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", http.StatusNotFound},
	{registry.ErrDigestInvalid, "DIGEST_INVALID", http.StatusBadRequest},
	{registry.ErrManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest},
	{registry.ErrManifestInvalid, "MANIFEST_INVALID", http.StatusBadRequest},
	{registry.ErrManifestUnknown, "MANIFEST_UNKNOWN", http.StatusNotFound},
	{registry.ErrNameInvalid, "NAME_INVALID", http.StatusBadRequest},
	{registry.ErrNameUnknown, "NAME_UNKNOWN", http.StatusNotFound},
	{registry.ErrSizeInvalid, "SIZE_INVALID", http.StatusBadRequest},
	{registry.ErrTooLarge, "SIZE_INVALID", http.StatusRequestEntityTooLarge},
	{registry.ErrRangeInvalid, "BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable},
	{registry.ErrTagInvalid, "TAG_INVALID", http.StatusBadRequest},
	{registry.ErrPaginationInvalid, "PAGINATION_NUMBER_INVALID", http.StatusBadRequest},
	{registry.ErrUnsupported, "UNSUPPORTED", http.StatusMethodNotAllowed},
	// The spec has no code for a failing disk: UNKNOWN, with the class's
	// text naming the cause (the full error goes to the log only).
	{registry.ErrInsufficientStorage, "UNKNOWN", http.StatusInsufficientStorage},
	{registry.ErrStorageFailure, "UNKNOWN", http.StatusInternalServerError},
	// Pull-through: the upstream registry failed (unreachable, an
	// error, content not matching its digest).
	{registry.ErrUpstream, "UNKNOWN", http.StatusBadGateway},
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers err as OCI error JSON. Errors of no known class are
// logged and answered 500 without their text; server-side classes (5xx)
// are logged and answered with their class's text.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, status, msg := "UNKNOWN", http.StatusInternalServerError, "internal error"
	for _, c := range errorCodes {
		if errors.Is(err, c.class) {
			code, status, msg = c.code, c.status, err.Error()
			if status >= 500 {
				msg = c.class.Error()
			}
			break
		}
	}
	if status >= 500 {
		if r.Context().Err() != nil {
			log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	writeCode(w, status, code, msg)
}

func writeCode(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: code, Message: msg}}})
}
