package scan

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats WriteReport writes.
const (
	FormatTable     = "table"
	FormatJSON      = "json"
	FormatSARIF     = "sarif"
	FormatCycloneDX = "cyclonedx"
)

// WriteReport writes r in one of the formats: table (for people), json
// (the Report as served), sarif (SARIF 2.1.0, one result per finding) or
// cyclonedx (a CycloneDX 1.5 JSON SBOM with the findings as
// vulnerabilities).
func WriteReport(w io.Writer, r *Report, format string) error {
	switch format {
	case FormatTable, "":
		return writeTable(w, r)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case FormatSARIF:
		return writeSARIF(w, r)
	case FormatCycloneDX:
		return writeCycloneDX(w, r)
	}
	return fmt.Errorf("scan: unknown report format %q (table, json, sarif, cyclonedx)", format)
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[i+1 : i+13]
	}
	return d
}

func feedTime(f FeedInfo) string {
	if f.Time.IsZero() {
		return "none imported"
	}
	return f.Time.UTC().Format(time.RFC3339)
}

func writeTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	if r.Image != "" {
		fmt.Fprintf(ew, "image     %s", r.Image)
		if r.Platform != "" {
			fmt.Fprintf(ew, " (%s)", r.Platform)
		}
		fmt.Fprintln(ew)
	}
	if r.OS != nil {
		fmt.Fprintf(ew, "os        %s %s\n", r.OS.ID, r.OS.VersionID)
	}
	fmt.Fprintf(ew, "feed      %s (%d advisories)\n", feedTime(r.Feed), r.Feed.Records)
	fmt.Fprintf(ew, "packages  %d\n", len(r.Packages))
	fmt.Fprintf(ew, "read      %d of %d uncompressed bytes\n", r.Stats.ContentRead+r.Stats.HeaderBytes, r.Stats.Uncompressed)
	fmt.Fprintf(ew, "findings  %d\n\n", len(r.Findings))
	if len(r.Findings) > 0 {
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPACKAGE\tVERSION\tFIXED\tECOSYSTEM\tSEVERITY\tLAYER\tPATH")
		for _, f := range r.Findings {
			fixed := f.Fixed
			if fixed == "" && f.LastAffected != "" {
				fixed = "(<= " + f.LastAffected + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Package, f.Version, fixed, f.Ecosystem,
				severityWord(f), short(f.Layer), f.Path)
		}
		tw.Flush()
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(ew, "\nnotes\n")
		for _, n := range r.Notes {
			if n.Path != "" {
				fmt.Fprintf(ew, "  %s: %s\n", n.Path, n.Message)
			} else {
				fmt.Fprintf(ew, "  %s\n", n.Message)
			}
		}
	}
	return ew.err
}

func severityWord(f Finding) string {
	if f.SeverityLevel != "" {
		return f.SeverityLevel
	}
	if len(f.Severity) > 0 {
		return f.Severity[0].Type
	}
	return ""
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// sarifLevel maps a database's severity word to a SARIF level.
func sarifLevel(f Finding) string {
	switch strings.ToUpper(f.SeverityLevel) {
	case "CRITICAL", "HIGH":
		return "error"
	case "LOW":
		return "note"
	}
	return "warning"
}

func writeSARIF(w io.Writer, r *Report) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string         `json:"id"`
		ShortDescription msg            `json:"shortDescription"`
		HelpURI          string         `json:"helpUri"`
		Properties       map[string]any `json:"properties,omitempty"`
	}
	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID     string         `json:"ruleId"`
		Level      string         `json:"level"`
		Message    msg            `json:"message"`
		Locations  []location     `json:"locations"`
		Properties map[string]any `json:"properties"`
	}
	var rules []rule
	seen := map[string]bool{}
	var results []result
	for _, f := range r.Findings {
		if !seen[f.ID] {
			seen[f.ID] = true
			desc := f.Summary
			if desc == "" {
				desc = f.ID
			}
			rules = append(rules, rule{ID: f.ID, ShortDescription: msg{desc}, HelpURI: "https://osv.dev/vulnerability/" + url.PathEscape(f.ID),
				Properties: map[string]any{"aliases": f.Aliases}})
		}
		text := fmt.Sprintf("%s %s (%s) is affected by %s", f.Package, f.Version, f.Ecosystem, f.ID)
		if f.Fixed != "" {
			text += "; fixed in " + f.Fixed
		}
		var loc location
		loc.PhysicalLocation.ArtifactLocation.URI = f.Path
		results = append(results, result{RuleID: f.ID, Level: sarifLevel(f), Message: msg{text}, Locations: []location{loc},
			Properties: map[string]any{"layer": f.Layer, "package": f.Package, "version": f.Version, "fixed": f.Fixed}})
	}
	if rules == nil {
		rules = []rule{}
	}
	if results == nil {
		results = []result{}
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "chunkyard", "informationUri": "https://github.com/chunkyard/chunkyard", "rules": rules}},
			"results":    results,
			"properties": map[string]any{"image": r.Image, "feedTime": feedTime(r.Feed)},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// purl is a package's package URL.
func purl(p Package) string {
	v := url.PathEscape(p.Version)
	switch p.Manager {
	case "dpkg":
		q := ""
		if p.Release != "" {
			q = "?distro=" + strings.ToLower(p.Ecosystem) + "-" + url.QueryEscape(p.Release)
		}
		return "pkg:deb/" + strings.ToLower(p.Ecosystem) + "/" + url.PathEscape(p.Name) + "@" + v + q
	case "apk":
		q := ""
		if p.Release != "" {
			q = "?distro=" + url.QueryEscape(strings.TrimPrefix(p.Release, "v"))
		}
		return "pkg:apk/alpine/" + url.PathEscape(p.Name) + "@" + v + q
	}
	switch p.Ecosystem {
	case EcosystemPyPI:
		return "pkg:pypi/" + url.PathEscape(NormalizePyPI(p.Name)) + "@" + v
	case EcosystemNPM:
		if scope, name, ok := strings.Cut(p.Name, "/"); ok {
			return "pkg:npm/" + url.PathEscape(scope) + "/" + url.PathEscape(name) + "@" + v
		}
		return "pkg:npm/" + url.PathEscape(p.Name) + "@" + v
	case EcosystemGo:
		return "pkg:golang/" + p.Name + "@v" + v
	}
	return ""
}

func writeCycloneDX(w io.Writer, r *Report) error {
	type prop struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type component struct {
		Type       string `json:"type"`
		BOMRef     string `json:"bom-ref"`
		Name       string `json:"name"`
		Version    string `json:"version,omitempty"`
		Purl       string `json:"purl,omitempty"`
		Properties []prop `json:"properties,omitempty"`
	}
	type rating struct {
		Method   string `json:"method,omitempty"`
		Vector   string `json:"vector,omitempty"`
		Severity string `json:"severity,omitempty"`
	}
	type ref struct {
		Ref string `json:"ref"`
	}
	type vuln struct {
		BOMRef      string   `json:"bom-ref"`
		ID          string   `json:"id"`
		Source      any      `json:"source,omitempty"`
		References  []any    `json:"references,omitempty"`
		Ratings     []rating `json:"ratings,omitempty"`
		Description string   `json:"description,omitempty"`
		Recommend   string   `json:"recommendation,omitempty"`
		Affects     []ref    `json:"affects"`
	}
	refOf := func(p Package) string { return p.Ecosystem + ":" + p.Name + "@" + p.Version + ":" + p.Path }
	var comps []component
	for _, p := range r.Packages {
		c := component{Type: "library", BOMRef: refOf(p), Name: p.Name, Version: p.Version, Purl: purl(p),
			Properties: []prop{{"chunkyard:layer", p.Layer}, {"chunkyard:path", p.Path}, {"chunkyard:ecosystem", p.Ecosystem}}}
		if p.Source != "" && p.Source != p.Name {
			c.Properties = append(c.Properties, prop{"chunkyard:source", p.Source})
		}
		if p.OwnedBy != "" {
			c.Properties = append(c.Properties, prop{"chunkyard:owned-by", p.OwnedBy})
		}
		comps = append(comps, c)
	}
	if r.OS != nil {
		comps = append(comps, component{Type: "operating-system", BOMRef: "os:" + r.OS.ID + "@" + r.OS.VersionID, Name: r.OS.ID, Version: r.OS.VersionID})
	}
	var vulns []vuln
	for _, f := range r.Findings {
		v := vuln{BOMRef: f.ID + ":" + f.Package + "@" + f.Version + ":" + f.Path, ID: f.ID,
			Source:      map[string]string{"name": "OSV", "url": "https://osv.dev/vulnerability/" + url.PathEscape(f.ID)},
			Description: f.Summary,
			Affects:     []ref{{Ref: f.Ecosystem + ":" + f.Package + "@" + f.Version + ":" + f.Path}}}
		// The component ref uses the package's base ecosystem.
		base, _, _ := strings.Cut(f.Ecosystem, ":")
		v.Affects[0].Ref = base + ":" + f.Package + "@" + f.Version + ":" + f.Path
		for _, a := range f.Aliases {
			v.References = append(v.References, map[string]any{"id": a, "source": map[string]string{"name": "OSV"}})
		}
		for _, s := range f.Severity {
			method := "other"
			switch {
			case strings.HasPrefix(s.Score, "CVSS:3.1"):
				method = "CVSSv31"
			case strings.HasPrefix(s.Score, "CVSS:3.0"):
				method = "CVSSv3"
			case strings.HasPrefix(s.Score, "CVSS:4"):
				method = "CVSSv4"
			case strings.HasPrefix(s.Score, "AV:"):
				method = "CVSSv2"
			}
			v.Ratings = append(v.Ratings, rating{Method: method, Vector: s.Score})
		}
		if f.SeverityLevel != "" {
			sev := strings.ToLower(f.SeverityLevel)
			if sev == "moderate" {
				sev = "medium"
			}
			v.Ratings = append(v.Ratings, rating{Severity: sev})
		}
		if f.Fixed != "" {
			v.Recommend = "upgrade " + f.Package + " to " + f.Fixed
		}
		vulns = append(vulns, v)
	}
	if comps == nil {
		comps = []component{}
	}
	if vulns == nil {
		vulns = []vuln{}
	}
	sum := sha256.Sum256([]byte(r.Image + "\x00" + r.Feed.Time.String() + "\x00" + fmt.Sprint(len(r.Findings))))
	sum[6] = sum[6]&0x0f | 0x50 // a name-based UUID (version 5 layout)
	sum[8] = sum[8]&0x3f | 0x80
	serial := fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	meta := map[string]any{
		"timestamp":  time.Now().UTC().Format(time.RFC3339),
		"tools":      map[string]any{"components": []any{map[string]string{"type": "application", "name": "chunkyard"}}},
		"properties": []prop{{"chunkyard:feed-time", feedTime(r.Feed)}},
	}
	if r.Image != "" {
		meta["component"] = map[string]string{"type": "container", "bom-ref": r.Image, "name": r.Image}
	}
	doc := map[string]any{
		"bomFormat":       "CycloneDX",
		"specVersion":     "1.5",
		"serialNumber":    serial,
		"version":         1,
		"metadata":        meta,
		"components":      comps,
		"vulnerabilities": vulns,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
