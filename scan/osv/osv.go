// Package osv owns the Open Source Vulnerability format (schema 1.x) as
// chunkyard reads it: parsing records exactly (one kind per range event,
// RFC 3339 times, withdrawn records), evaluating whether a package version
// is affected as the schema's Evaluation section specifies, and reading
// records from single JSON files, directories, the per-ecosystem all.zip
// osv.dev publishes and its modified_id.csv.
package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Vulnerability is one OSV record. Fields the matcher does not need are
// kept as raw JSON.
type Vulnerability struct {
	SchemaVersion    string          `json:"schema_version,omitempty"`
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Published        *time.Time      `json:"published,omitempty"`
	Withdrawn        *time.Time      `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Related          []string        `json:"related,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Details          string          `json:"details,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	References       json.RawMessage `json:"references,omitempty"`
	Credits          json.RawMessage `json:"credits,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// Severity is a severity score: its type (CVSS_V3, CVSS_V4, Ubuntu, ...)
// and the score or vector.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected package and the versions affected.
type Affected struct {
	Package           Package         `json:"package"`
	Severity          []Severity      `json:"severity,omitempty"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Package names a package: its ecosystem ("npm", "Debian:12"), its name
// in that ecosystem, and optionally a package URL.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Purl      string `json:"purl,omitempty"`
}

// Range types.
const (
	RangeSemver    = "SEMVER"
	RangeEcosystem = "ECOSYSTEM"
	RangeGit       = "GIT"
)

// Range is a timeline of events in one version ordering.
type Range struct {
	Type             string          `json:"type"`
	Repo             string          `json:"repo,omitempty"`
	Events           []Event         `json:"events"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// Event is one event of a range: exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// UnmarshalJSON enforces the schema's rule: one kind per event.
func (e *Event) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if len(m) != 1 {
		return fmt.Errorf("event with %d fields, want exactly one of introduced, fixed, last_affected, limit", len(m))
	}
	for k, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("event %s: %w", k, err)
		}
		if v == "" {
			return fmt.Errorf("event %s: empty version", k)
		}
		switch k {
		case "introduced":
			e.Introduced = v
		case "fixed":
			e.Fixed = v
		case "last_affected":
			e.LastAffected = v
		case "limit":
			e.Limit = v
		default:
			return fmt.Errorf("unknown event kind %q", k)
		}
	}
	return nil
}

// ErrInvalid is wrapped by errors for records that break the schema.
var ErrInvalid = errors.New("osv: invalid record")

// maxRecord caps one record's size. The largest real records (Linux
// kernel and Chromium entries with enumerated versions) are a few MiB.
const maxRecord = 32 << 20

// Parse parses and checks one OSV record.
func Parse(data []byte) (*Vulnerability, error) {
	if len(data) > maxRecord {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(data), maxRecord)
	}
	var v Vulnerability
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the record", ErrInvalid)
	}
	var probe struct {
		Modified *string `json:"modified"`
	}
	if json.Unmarshal(data, &probe) != nil || probe.Modified == nil {
		return nil, fmt.Errorf("%w: %s: no modified time", ErrInvalid, v.ID)
	}
	if err := v.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, v.ID, err)
	}
	return &v, nil
}

func (v *Vulnerability) check() error {
	if v.ID == "" {
		return errors.New("no id")
	}
	for i, a := range v.Affected {
		if a.Package.Ecosystem == "" && a.Package.Purl == "" && len(a.Ranges) > 0 {
			// GIT-only records name no package; ecosystem ones must.
			for _, r := range a.Ranges {
				if r.Type != RangeGit {
					return fmt.Errorf("affected[%d]: no package ecosystem", i)
				}
			}
		}
		if a.Package.Ecosystem != "" && a.Package.Name == "" {
			return fmt.Errorf("affected[%d]: package without a name", i)
		}
		for j, r := range a.Ranges {
			switch r.Type {
			case RangeSemver, RangeEcosystem, RangeGit:
			default:
				return fmt.Errorf("affected[%d].ranges[%d]: unknown type %q", i, j, r.Type)
			}
			intro, fixed, last := 0, 0, 0
			for _, e := range r.Events {
				switch {
				case e.Introduced != "":
					intro++
				case e.Fixed != "":
					fixed++
				case e.LastAffected != "":
					last++
				}
			}
			if intro == 0 {
				return fmt.Errorf("affected[%d].ranges[%d]: no introduced event", i, j)
			}
			if fixed > 0 && last > 0 {
				return fmt.Errorf("affected[%d].ranges[%d]: both fixed and last_affected events", i, j)
			}
		}
	}
	return nil
}

// GoImports returns the package paths a Go record's
// ecosystem_specific.imports lists for an affected module.
func (a *Affected) GoImports() []string {
	if len(a.EcosystemSpecific) == 0 {
		return nil
	}
	var es struct {
		Imports []struct {
			Path string `json:"path"`
		} `json:"imports"`
	}
	if json.Unmarshal(a.EcosystemSpecific, &es) != nil {
		return nil
	}
	var out []string
	for _, i := range es.Imports {
		if i.Path != "" {
			out = append(out, i.Path)
		}
	}
	return out
}

// DatabaseSeverity returns database_specific.severity when it is a
// string (GitHub's "HIGH", "MODERATE", ...).
func (v *Vulnerability) DatabaseSeverity() string {
	if len(v.DatabaseSpecific) == 0 {
		return ""
	}
	var ds struct {
		Severity json.RawMessage `json:"severity"`
	}
	if json.Unmarshal(v.DatabaseSpecific, &ds) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(ds.Severity, &s) != nil {
		return ""
	}
	return s
}
