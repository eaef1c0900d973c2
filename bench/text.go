package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteText writes the report for people: one block per layout, then the
// total.
func (r Report) WriteText(w io.Writer) error {
	c := r.Chunker
	fmt.Fprintf(w, "chunks: restic chunker, polynomial %s, min %s, average 2^%d, max %s; zstd %s; %d bytes of pack overhead each\n",
		c.Polynomial, HumanBytes(int64(c.MinChunk)), c.AverageBits, HumanBytes(int64(c.MaxChunk)), c.Compression, ChunkOverhead)
	for _, l := range r.Layouts {
		fmt.Fprintf(w, "\nlayout %s: what it adds to the layouts above\n", l.Path)
		writeSummary(w, l.Summary, fmt.Sprintf("; %d already counted, %d missing", l.Seen, l.Missing))
		for _, b := range l.Details {
			writeBlob(w, b)
		}
	}
	fmt.Fprintf(w, "\ntotal of %d layouts, every blob and chunk once\n", len(r.Layouts))
	_, err := writeSummary(w, r.Total, "")
	return err
}

func writeSummary(w io.Writer, s Summary, extra string) (int, error) {
	fmt.Fprintf(w, "  manifests %d, blobs %d, layers %d (%s of tar), reproduced %d%s\n",
		s.Manifests, s.Blobs, s.Layers, HumanBytes(s.TarBytes), s.Reproduced, extra)
	if len(s.Encoders) > 0 {
		fmt.Fprintf(w, "  reproduced: %s\n", countList(s.Encoders))
	}
	if len(s.NotReproduced) > 0 {
		fmt.Fprintf(w, "  opaque: %s\n", countList(s.NotReproduced))
	}
	row := func(cells ...any) (int, error) {
		line := fmt.Sprintf("  %-16s %13s %10s %7s %10s %11s", cells...)
		return fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	row("store", "bytes", "", "chunks", "mean chunk", "plain/store")
	row("plain registry", fmt.Sprint(s.Plain.Bytes), HumanBytes(s.Plain.Bytes), "", "", "")
	chunked := func(name string, u Usage, ratio float64) (int, error) {
		return row(name, fmt.Sprint(u.Bytes), HumanBytes(u.Bytes), fmt.Sprint(u.Chunks), HumanBytes(u.MeanChunk), fmt.Sprintf("%.2fx", ratio))
	}
	chunked("chunkyard", s.Chunkyard, s.PlainOverChunkyard)
	return chunked("ideal plain CDC", s.IdealCDC, s.PlainOverIdealCDC)
}

func writeBlob(w io.Writer, b BlobReport) {
	what := b.Role
	if b.Format != "" {
		what += " " + b.Format
	}
	how := "opaque"
	switch {
	case b.Reproduced:
		how = "split, " + b.Encoding
	case b.Why != "":
		how = "opaque: " + b.Why
	}
	fmt.Fprintf(w, "    %s %s %s: %s; chunkyard +%s, ideal +%s\n", b.Digest, what, HumanBytes(b.Size), how,
		HumanBytes(b.Chunkyard.Bytes), HumanBytes(b.IdealCDC.Bytes))
}

// countList formats counts as "a ×2, b ×1", most first.
func countList(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// HumanBytes formats a byte count in binary units ("1.5 MiB").
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
