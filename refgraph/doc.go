// Package refgraph owns chunkyard's index: the names and references that
// turn repositories, tags and manifests into blobs, and blobs into chunks
// stored in packs, with the reference counts that garbage collection uses.
// It knows nothing of bytes on the wire or in packs beyond chunk locations.
//
// The index is one Pebble database. Every logical change (a blob committed,
// a manifest pushed, a tag moved, a link removed) is one atomic batch
// committed with Sync, and a reference count changes in the same batch as
// the edge that causes it. Batches are built and applied under a writer
// mutex, so that the read-modify-write of counts is consistent, and their
// fsync is waited for outside it, so that concurrent writers share one WAL
// sync (group commit); readers never block. Bulk GC deletions go many to
// a batch, each batch held a few milliseconds at most. A write or fsync of
// Pebble's log that fails (a full disk) cannot be undone: the index fails
// and takes no more writes until a restart (ErrIndexFailed,
// Graph.Failed), which recovers everything committed. Pebble runs on the
// operating system's file system unless WithFS gives another (tests).
//
// Key schema (version 2; migrate.go turns older indexes into it). Names
// and tags can hold no NUL byte, so NUL separates the parts of a key;
// digests are written as "algo:hex".
//
//	\x00version                      -> "2"
//	\x00stats                        -> counters (see Stats)
//	r/<repo>                         -> repository exists (catalog)
//	t/<repo>\x00<tag>                -> tagValue{digest, pushed at (the write's stamp), region}
//	m/<repo>\x00<digest>             -> manifestValue{media type, size, subject, artifact type, annotations, pushed at}
//	l/<repo>\x00<digest>             -> blob link: the repo may read this blob
//	f/<repo>\x00<subject>\x00<digest> -> referrer descriptor (JSON)
//	b/<digest>                       -> blobValue{size, refs, chunk ids and raw lengths, kind, layout}
//	c/<chunk id, 32 bytes>           -> chunkValue{refs, pack, offset, stored and raw length, compressed}
//	p/<pack>                         -> packValue{total stored bytes, live stored bytes, chunks}
//	q/<digest>                       -> queued for conversion into a split layer: queued at, failed attempts, last error (convert.go)
//	w/<due, unix ns BE 8><digest>    -> schedule of the conversion queue, earliest due first
//	k/<digest>                       -> conversion abandoned after repeated failures: attempts, last error
//	e/<encoder> <output class>       -> split layers whose recipe names this encoder class (int64)
//	u/<repo>\x00<digest>             -> manifests of repo naming digest (uvarint; gc.go)
//	y/<repo>\x00<digest>             -> blob link no manifest uses, since (unix ns)
//	z/<digest>                       -> blob no link references, since (unix ns)
//	x/<pack>                         -> pack retired by a repack, since (unix ns)
//	o/<pack>                         -> pack in the backend the index does not know, first seen (unix ns)
//	a/<repo>\x00<digest>             -> manifest last pulled (unix ns; written a minute late, not synced)
//	\x00setting/<name>               -> settings kept across restarts (the GC configuration)
//	v/<seq, 8 bytes BE>              -> replication outbox event (replog.go)
//	h/<digest>                       -> pending outbox events holding the blob from GC (uvarint)
//	\x00repl/seq, \x00repl/peer/<peer> -> last event number; each peer's acknowledged position
//	s/<key>                          -> package scan's records (inventories, advisories, scan queue, reports;
//	                                    its package doc has their schema), handed out as a Space (space.go)
//
// Reference counts:
//   - a blob's refs count the repository links that point at it: one per
//     l/ key and one per m/ key naming its digest;
//   - a chunk's refs count the occurrences of the chunk in blob records; a
//     chunk at zero stays indexed (a pull that looked up its blob before
//     may still read it, a push may take it up again) but its bytes no
//     longer count as live in its pack;
//   - a pack's live bytes sum the stored bytes of its indexed chunks; its
//     total bytes also count chunks written but never indexed (a lost race
//     between two pushes of the same new chunk), which repacking reclaims.
//
// Garbage collection (package gc) never scans what is alive: deleting a
// manifest lowers the use counts (u/) of what it names; a blob link whose
// count is zero is stamped (y/), and removed after the grace period; a
// blob whose refs drop to zero is stamped (z/), and removed after it,
// lowering its chunks' refs; a chunk at zero stops counting as live in its
// pack, and repacking (MovePack) moves the live ones out, drops the dead
// records and retires the pack (x/). Every such step re-checks its
// condition in its own batch, so a push that takes something up again in
// between wins. Check recounts everything from scratch (fsck).
package refgraph
