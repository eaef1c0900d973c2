package ocihttp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/chunkyard/chunkyard/registry"
)

// Scanner is what the scan route needs of the registry service
// (*registry.Service); a Registry without it has no scan route.
type Scanner interface {
	ScanReport(ctx context.Context, repo, ref string) (*registry.ScanResult, error)
}

var _ Scanner = (*registry.Service)(nil)

// scanPending is the body of a 202: the scan is queued or running.
type scanPending struct {
	Status   string `json:"status"`
	Layers   int    `json:"layers"`
	Analyzed int    `json:"analyzed"`
}

// scanReport answers GET /chunkyard/v1/<name>/scan/<reference>: 200 with
// the JSON report (an image's, or an index's with one per platform
// image), 202 while the scan is queued or running, 404 for an unknown
// manifest or one that is not a container image.
func (s *server) scanReport(w http.ResponseWriter, r *http.Request, repo string) error {
	sc, ok := s.reg.(Scanner)
	if !ok {
		writeCode(w, http.StatusNotFound, "UNSUPPORTED", "this registry does not scan images")
		return nil
	}
	ref, err := pathVar(r, "reference")
	if err != nil {
		return errors.Join(registry.ErrTagInvalid, err)
	}
	res, err := sc.ScanReport(r.Context(), repo, ref)
	switch {
	case errors.Is(err, registry.ErrNotImage):
		writeCode(w, http.StatusNotFound, "NOT_AN_IMAGE", err.Error())
		return nil
	case errors.Is(err, registry.ErrScanningOff):
		writeCode(w, http.StatusNotFound, "UNSUPPORTED", err.Error())
		return nil
	case err != nil:
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	var body any
	switch {
	case res.Status != registry.ScanDone:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
		body = scanPending{Status: res.Status, Layers: res.Layers, Analyzed: res.Analyzed}
	case res.Index != nil:
		body = res.Index
	default:
		body = res.Report
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(body)
}
