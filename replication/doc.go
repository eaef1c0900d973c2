// Package replication owns chunk-level replication between regions: the
// node-to-node protocol over HTTP (Receiver, served on the normal
// address under /chunkyard/replicate/v1/), and the Sender that drains the
// index's outbox (refgraph's replog) to each peer in the background.
//
// For a manifest put the sender ships only what the peer lacks:
//
//  1. POST blobs/check {repo, blobs}: which of the blobs the manifest
//     names the peer has not indexed at all;
//  2. POST chunks/check {ids} (in batches): which chunks of those blobs
//     the peer lacks;
//  3. POST chunks: those chunks as they are stored (zstd frames or raw
//     bytes, never re-encoded), in frames (see writeFrame); the peer
//     verifies each against its id, writes it to a pack and indexes it
//     with no reference;
//  4. POST blobs {repo, blob recipe}: per blob, the recipe (chunk list,
//     kind, layer layout: header stream, encoder recipe, checkpoints); the
//     peer rebuilds the blob from its chunks, checks its digest and size,
//     and only then indexes it and links it into the repository;
//  5. POST events {event, manifest bytes}: the manifest, validated like
//     a client's push (everything it names must be there), and its tag,
//     set only if the event's stamp wins (refgraph.Stamp). Deletes and
//     untags go the same way.
//
// The manifest is indexed last, so a half-received image is never
// visible. Every step is idempotent: a sender or receiver killed midway
// resumes with step 1, and what arrived before is not sent again.
//
// The other direction, for a pull that replication has not served yet
// (PeerFallback, the method set of the registry's pull-through hook): GET
// recipe?repo&digest gives a blob's recipe, POST chunks/get {repo, digest,
// ids} the chunks of that blob the puller lacks, as stored. Both answer
// only for blobs linked into the named repository.
package replication
