package main

import (
	"fmt"
	"io"

	"github.com/chunkyard/chunkyard/bench"
	"github.com/chunkyard/chunkyard/refgraph"
)

// printUsage prints `chunkyard stats --repos`' tables: namespaces, then
// repositories, each with its unique bytes (what deleting it frees) and
// its share of the bytes it holds with others.
func printUsage(w io.Writer, u *refgraph.UsageReport) {
	table := func(title string, rows []refgraph.Usage) {
		fmt.Fprintf(w, "\n%s\tunique\tshared (share)\tshared (held)\tunique+share\n", title)
		for _, r := range rows {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%d\n", r.Name, bench.HumanBytes(r.UniqueBytes), bench.HumanBytes(r.SharedBytes),
				bench.HumanBytes(r.HeldSharedBytes), r.UniqueBytes+r.SharedBytes)
		}
	}
	table("namespaces", u.Namespaces)
	table("repositories", u.Repos)
	fmt.Fprintf(w, "\nunattributed\t%d\t(%s stored for blobs no repository links, waiting for GC)\n", u.UnattributedBytes, bench.HumanBytes(u.UnattributedBytes))
	fmt.Fprintf(w, "usage total\t%d\t(unique + shares + unattributed = live stored bytes %d + pending bytes %d; %d chunks, %s)\n",
		u.StoredBytes, u.LiveStoredBytes, u.PendingBytes, u.Chunks, u.Duration.Round(1e6))
}
