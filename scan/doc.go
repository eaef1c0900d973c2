// Package scan owns vulnerability scanning: per-layer package inventories
// read from a layer's few package files, the union of an image's layers,
// the OSV advisory feed, and matching the one against the other.
//
// # Reading layers
//
// Analyzers read a layer through the Layer interface: a walk over its
// entries in archive order, each file opened on demand as an io.ReaderAt.
// Two views implement it:
//
//   - SplitLayer, for a layer stored split (assembler/tarsplit): the header
//     stream lists every entry and its payload's offset in the content
//     stream, so only the byte ranges of the files analyzers select are
//     read from the content stream (over chunks, in the server). Nothing
//     is decompressed; ReadStats says how many bytes were read against
//     the layer's uncompressed size.
//   - TarLayer, for an opaque or pending layer: the tar stream, once,
//     decompressed by the caller. A selected file is read as it passes,
//     as far as an analyzer reads it: the first MiB in memory, the rest
//     spooled to a temporary file, never the whole layer.
//
// A file larger than Options.MaxFileSize (256 MiB) is skipped with a note.
// A problem with one file (a record that does not parse, a hard link) is
// a Note in the inventory; a tar that breaks off is a note and
// Inventory.Incomplete; an error reading stored bytes (ReadError) fails
// the analysis, so that no incomplete inventory is cached.
//
// # Analyzers
//
// os-release (etc/os-release, usr/lib/os-release); dpkg
// (var/lib/dpkg/status, var/lib/dpkg/status.d/* of distroless images,
// with source packages, and var/lib/dpkg/info/*.list for the OS package
// owning a language package's files); apk (lib/apk/db/installed, with
// origins and file ownership); Python (*.dist-info/METADATA,
// *.egg-info/PKG-INFO, egg-info files); npm (node_modules/**/package.json
// and package-lock.json versions 1 to 3); Go binaries (debug/buildinfo:
// modules, and the toolchain as "stdlib"). RPM databases are noted, not
// read. The analyzers' output has a version, AnalyzerVersion; an
// inventory is cached under (layer digest, AnalyzerVersion).
//
// Executables are Go binaries only if their ELF program headers carry
// Go's build ID note (or, for a static file without one, its section
// headers a .go.buildinfo section), so a non-Go executable costs the read
// of its first bytes. On a split layer even that is spared for the
// executables of dpkg packages built without Go (no golang-* in
// Built-Using): they are checked after the walk, once the packages' file
// lists are known, and the tar view drops what it found in them, so both
// views agree. Executables of packages built with Go are read and their
// modules reported with the owning package, like Python packages that
// Debian ships.
//
// # Images
//
// Union composes an image's inventories bottom up with the layers'
// whiteouts (".wh.name", ".wh..wh..opq") and the paths each layer writes
// (a later status file replaces an earlier one), with no layer read again;
// each package names the layer that introduced it (its file's layer; for
// an OS package, the layer since which the rewritten package database has
// listed it unchanged), and OS packages get the ecosystem and release of
// the image's os-release ("Debian", "12").
//
// # Advisories and matching
//
// Package scan/osv parses OSV records and evaluates their ranges;
// scan/version holds each ecosystem's version ordering. DB imports
// records (a JSON file, a directory, an all.zip, incrementally through a
// modified_id.csv) and keeps an index from (ecosystem, package name) to
// advisory ids, so matching a package reads only the advisories naming
// it, and a feed update can name the packages it changed
// (ImportStats.Changed) and, through LayersNaming, the layers holding
// them: only the images using those layers need matching again, and
// matching reads no layer.
//
// # Feed generations and reports
//
// Every import that changes the advisories moves the feed to its next
// generation and records which packages it changed (chg/). A report
// carries the generation it was matched at; Fresh tells, without
// matching, whether the generations since changed a package the report
// holds: if not, it is the new feed's report too. So a feed update
// matches again only the images holding a changed package (found through
// pkl/ and lim/), from their inventories. An import cut off by a crash
// leaves meta/importing, and RecoverImport records a generation that
// changed everything.
//
// # Server state
//
// A server (package registry) records each pushed image (ImageRecord:
// its layers), queues the layers without an inventory (a restart-safe
// queue: q/ and its schedule qw/, with backoff; qf/ for layers given up
// on), keeps each image's last report, and drops a layer's or an image's
// keys when garbage collection deletes its blob (ForgetLayer,
// DeleteImage).
//
// # Storage
//
// DB keeps its state in a KV (get, ordered prefix scan, atomic batch):
// the server's index (refgraph's scan space, s/), or PebbleKV over a
// Pebble database under a key prefix of scan's own:
//
//	inv/<layer>/<analyzer version: 4 bytes BE>  Inventory JSON
//	pkl/<eco>\x00<name>\x00<layer>              "" (package -> layers; eco dpkg/apk for OS packages)
//	adv/<id>                                    the record's bytes as imported
//	am/<id>                                     what matching needs of it (JSON)
//	idx/<eco>\x00<name>\x00<id>                 "" (ecosystem without release; PyPI names PEP 503-normalised)
//	meta/feed                                   FeedInfo JSON (with the generation)
//	meta/importing                              an import is writing (or was cut off)
//	meta/done/<name>                            a one-time job done (Mark)
//	chg/<generation: 8 bytes BE>                Changes JSON: the packages that generation changed (last 1024)
//	q/<layer>                                   QueueEntry JSON: a layer waiting for analysis
//	qw/<due: unix ns, 8 bytes BE><layer>        "" (the queue's schedule)
//	qf/<layer>                                  Abandoned JSON: analysis given up, and why
//	img/<manifest>                              ImageRecord JSON
//	lim/<layer>\x00<manifest>                   "" (layer -> images holding it)
//	rep/<manifest>                              Report JSON, matched at its Feed.Generation
//
// An inventory and its pkl/ keys are written in one batch, which also
// takes the layer off the queue, and deleted in one (ForgetLayer); a
// record's am/, adv/ and idx/ keys likewise; an image's img/ and lim/
// keys likewise (DeleteImage, which drops its report too).
package scan
