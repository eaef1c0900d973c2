package scan

import (
	"context"
	"fmt"
)

// Report is what a scan of one image says: the feed it was matched
// against, the image's packages and the findings, with notes on what
// could not be read or evaluated and how much of the layers was read. It
// is the JSON served for an image (one per platform image of an index).
type Report struct {
	// Image is the manifest digest; Platform "os/arch[/variant]" for a
	// platform image of an index.
	Image    string   `json:"image,omitempty"`
	Platform string   `json:"platform,omitempty"`
	Feed     FeedInfo `json:"feed"`
	// Layers are the image's layer digests, bottom first.
	Layers   []string   `json:"layers"`
	OS       *OSRelease `json:"os,omitempty"`
	Packages []Package  `json:"packages"`
	Findings []Finding  `json:"findings"`
	Notes    []Note     `json:"notes,omitempty"`
	// Stats are the layers' read statistics added up: bytes of content
	// read against the layers' uncompressed size.
	Stats      ReadStats `json:"stats"`
	Incomplete bool      `json:"incomplete,omitempty"`
}

// IndexReport is the report of an image index: one report per platform
// image.
type IndexReport struct {
	Index   string   `json:"index"`
	Feed    FeedInfo `json:"feed"`
	Reports []Report `json:"manifests"`
}

// Report composes an image's layers (bottom first, each with its cached
// inventory) and matches the result against the advisories. It reads no
// layer.
func (db *DB) Report(ctx context.Context, image string, layers []LayerInventory) (*Report, error) {
	return db.NewMatcher().Report(ctx, image, layers)
}

// Report is DB.Report with the Matcher's memory: for the many images a
// feed update matches again.
func (mt *Matcher) Report(ctx context.Context, image string, layers []LayerInventory) (*Report, error) {
	db := mt.db
	for _, l := range layers {
		if l.Inventory == nil {
			return nil, fmt.Errorf("scan: layer %s has no inventory", l.Digest)
		}
	}
	feed, err := db.Feed(ctx)
	if err != nil {
		return nil, err
	}
	img := Union(layers)
	findings, notes, err := mt.Match(ctx, img)
	if err != nil {
		return nil, err
	}
	r := &Report{Image: image, Feed: feed, OS: img.OS, Packages: img.Packages, Findings: findings,
		Notes: append(img.Notes, notes...), Stats: img.Stats, Incomplete: img.Incomplete}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, l := range layers {
		r.Layers = append(r.Layers, l.Digest)
	}
	return r, nil
}
