package osv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chunkyard/chunkyard/scan/version"
)

// Verdict is the outcome of evaluating one affected entry for a version.
type Verdict struct {
	Affected bool
	// Fixed is the first fixed version after v in the range that matched;
	// LastAffected its last_affected event, when the range has one.
	Fixed, LastAffected string
	// Skipped counts ranges that could not be evaluated (GIT ranges, or
	// versions the ordering does not understand), with the last reason.
	Skipped int
	Reason  string
}

// Evaluate says whether version v of the affected package is affected,
// as the schema's Evaluation section specifies: v is listed in versions,
// or in some range v is before a limit (there is an implicit limit "*")
// and, walking the events in version order, the last introduced,
// fixed or last_affected event that v has reached leaves it vulnerable
// (introduced "0" is before every version; v past last_affected is not
// affected). ECOSYSTEM ranges use eco's ordering (see package version),
// SEMVER ranges Semantic Versioning 2.0 (Go ones with Go's "v"
// handling). GIT ranges cannot be evaluated against a package version
// and are skipped.
func (a *Affected) Evaluate(eco, v string) Verdict {
	var out Verdict
	for _, lv := range a.Versions {
		if lv == v {
			out.Affected = true
			return out
		}
		if c, err := version.Compare(eco, lv, v); err == nil && c == 0 {
			out.Affected = true
			return out
		}
	}
	for _, r := range a.Ranges {
		var cmp func(x, y string) (int, error)
		switch r.Type {
		case RangeEcosystem:
			cmp = func(x, y string) (int, error) { return version.Compare(eco, x, y) }
		case RangeSemver:
			cmp = version.Semver
			if base, _, _ := strings.Cut(eco, ":"); base == "Go" {
				cmp = version.Go
			}
		default:
			out.Skipped++
			out.Reason = fmt.Sprintf("%s range not evaluated", r.Type)
			continue
		}
		hit, fixed, last, err := evalRange(r.Events, v, cmp)
		if err != nil {
			out.Skipped++
			out.Reason = err.Error()
			continue
		}
		if hit {
			out.Affected, out.Fixed, out.LastAffected = true, fixed, last
			return out
		}
	}
	return out
}

// evalRange evaluates one range's events for v.
func evalRange(events []Event, v string, cmp func(x, y string) (int, error)) (hit bool, fixed, last string, err error) {
	// Sort the events by version, "0" first, with errors kept.
	var sortErr error
	key := func(e Event) string {
		switch {
		case e.Introduced != "":
			return e.Introduced
		case e.Fixed != "":
			return e.Fixed
		case e.LastAffected != "":
			return e.LastAffected
		}
		return e.Limit
	}
	rank := func(e Event) int {
		switch {
		case e.Introduced != "":
			return 0
		case e.Fixed != "":
			return 1
		case e.LastAffected != "":
			return 2
		}
		return 3
	}
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(x, y Event) int {
		kx, ky := key(x), key(y)
		zx, zy := x.Introduced == "0", y.Introduced == "0"
		switch {
		case zx && zy:
			return 0
		case zx:
			return -1
		case zy:
			return 1
		case x.Limit == "*" || y.Limit == "*":
			if x.Limit == y.Limit {
				return 0
			}
			if x.Limit == "*" {
				return 1
			}
			return -1
		}
		c, err := cmp(kx, ky)
		if err != nil && sortErr == nil {
			sortErr = err
		}
		if c == 0 {
			return rank(x) - rank(y)
		}
		return c
	})
	if sortErr != nil {
		return false, "", "", sortErr
	}
	// Limits: v must be below one of them, if there are any.
	limited, below := false, false
	for _, e := range sorted {
		if e.Limit == "" {
			continue
		}
		limited = true
		if strings.Contains(e.Limit, "*") {
			below = true
			continue
		}
		c, err := cmp(v, e.Limit)
		if err != nil {
			return false, "", "", err
		}
		if c < 0 {
			below = true
		}
	}
	if limited && !below {
		return false, "", "", nil
	}
	vulnerable := false
	for _, e := range sorted {
		switch {
		case e.Introduced != "":
			if e.Introduced == "0" {
				vulnerable = true
				continue
			}
			c, err := cmp(v, e.Introduced)
			if err != nil {
				return false, "", "", err
			}
			if c >= 0 {
				vulnerable = true
			}
		case e.Fixed != "":
			c, err := cmp(v, e.Fixed)
			if err != nil {
				return false, "", "", err
			}
			if c >= 0 {
				vulnerable = false
			}
		case e.LastAffected != "":
			c, err := cmp(v, e.LastAffected)
			if err != nil {
				return false, "", "", err
			}
			if c > 0 {
				vulnerable = false
			}
		}
	}
	if !vulnerable {
		return false, "", "", nil
	}
	// The fix (or last affected version) that ends v's stretch.
	for _, e := range sorted {
		if e.Fixed != "" {
			if c, err := cmp(v, e.Fixed); err == nil && c < 0 {
				return true, e.Fixed, "", nil
			}
		}
		if e.LastAffected != "" {
			if c, err := cmp(v, e.LastAffected); err == nil && c <= 0 {
				return true, "", e.LastAffected, nil
			}
		}
	}
	return true, "", "", nil
}
