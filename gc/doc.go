// Package gc owns garbage collection: retention policies (which tags and
// manifests to delete), reclaiming what nothing references any more
// (blob links no manifest uses, blobs no link references, chunks no blob
// holds) and repacking packs whose live fraction fell, while pushes and
// pulls go on.
//
// Reclaiming works from the index's reference counts and the time each
// candidate became one (package refgraph), never from a full mark phase:
// deleting a manifest lowers the use counts of what it names, a link no
// manifest uses is removed after the grace period, a blob no link
// references is removed (in the same run: it counts as unreferenced from
// the moment its last link became unused) and releases its chunks, and a
// chunk no blob holds stops counting as live in its pack. Each step is one index
// batch that re-checks its condition, so a push that takes something up
// again in between wins. Repacking copies a pack's live chunks into new
// packs (durable first), switches the index in one batch that also drops
// the pack's dead chunk records, and deletes the old pack only after a
// second grace period, when no pull that looked chunks up before can
// still read it. A crash at any point leaves either the old state or the
// new one; leftovers (a copied chunk never indexed, a retired pack not
// deleted yet) are picked up by the next run.
package gc
