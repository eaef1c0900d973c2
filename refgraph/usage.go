package refgraph

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/internal/extsort"
	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

// Storage usage per repository and per namespace. Deduplication makes
// "the size of a repository" ambiguous, so usage is two numbers, defined
// on the stored bytes the index counts (the stored bytes of live chunks,
// plus the bytes of blobs waiting for the layer converter, which are
// stored as received):
//
//   - a repository holds a chunk (or a pending blob) if it links a blob
//     or a manifest made of it;
//   - unique bytes: the stored bytes of what the repository alone holds:
//     what deleting it would free, once GC has run;
//   - shared bytes: its share of what it holds with others: a chunk of s
//     stored bytes held by k repositories counts s/k to each (in whole
//     bytes: the remainder s mod k goes one byte each to the first
//     holders in name order, so that the shares sum to s exactly).
//
// Summed over every repository, unique + shared bytes are the stored
// bytes, less what no repository holds (blobs that nothing links any
// more, waiting for GC): UsageReport.UnattributedBytes. A namespace is
// the first component of a repository's name ("team" for "team/app/api";
// a name without a slash is its own namespace); it holds what its
// repositories hold, and its unique and shared bytes are counted the
// same way, so a chunk two repositories of one namespace share is unique
// to the namespace.

// Usage is what one repository or namespace accounts for.
type Usage struct {
	Name        string `json:"name"`
	UniqueBytes int64  `json:"unique_bytes"`
	SharedBytes int64  `json:"shared_bytes"`
	// HeldSharedBytes is the whole stored bytes of what it holds with
	// others (each such chunk counted in full): unique + held shared is
	// what it needs stored.
	HeldSharedBytes int64 `json:"held_shared_bytes"`
}

// UsageReport is what StorageUsage found, as of the snapshot it read.
type UsageReport struct {
	Repos      []Usage `json:"repositories"` // by name
	Namespaces []Usage `json:"namespaces"`   // by name
	// StoredBytes is the index's counters at the snapshot: the live
	// stored bytes of chunks plus the bytes pending conversion.
	StoredBytes     int64 `json:"stored_bytes"`
	LiveStoredBytes int64 `json:"live_stored_bytes"`
	PendingBytes    int64 `json:"pending_bytes"`
	// UnattributedBytes is what no repository holds (recounted from the
	// records): summed with every repository's unique and shared bytes,
	// it makes StoredBytes.
	UnattributedBytes int64         `json:"unattributed_bytes"`
	Chunks            int64         `json:"chunks"` // live chunk records read
	SortRuns          int           `json:"sort_runs"`
	Duration          time.Duration `json:"duration_ns"`
}

// Namespace returns the namespace of a repository: the first component
// of its name.
func Namespace(repo string) string {
	ns, _, _ := strings.Cut(repo, "/")
	return ns
}

// UsageOptions tune StorageUsage.
type UsageOptions struct {
	// TempDir is where the sorted runs go (removed when StorageUsage returns);
	// "" means os.TempDir(). They take about 40 bytes per chunk reference
	// and holding repository.
	TempDir string
	// Memory bounds the bytes held for sorting (two sorts at a time share
	// it); 0 means DefaultCheckMemory. On top come a few words per
	// repository and Pebble's block cache.
	Memory int
}

// StorageUsage computes every repository's and namespace's usage from a
// snapshot of the index, online, with memory bounded by opts.Memory
// whatever the number of chunks (plus a few words per repository): the
// holders of each blob and then of each chunk are external sorts,
// merge-joined with the blob and chunk records.
func (g *Graph) StorageUsage(ctx context.Context, opts UsageOptions) (*UsageReport, error) {
	start := time.Now()
	if opts.Memory <= 0 {
		opts.Memory = DefaultCheckMemory
	}
	dir, err := os.MkdirTemp(opts.TempDir, "chunkyard-usage-")
	if err != nil {
		return nil, fmt.Errorf("refgraph: usage: %w", err)
	}
	defer os.RemoveAll(dir)
	snap := g.db.NewSnapshot()
	defer snap.Close()
	u := &usageRun{ctx: ctx, snap: snap, dir: dir, memory: opts.Memory / 2, r: &UsageReport{}}
	if err := u.run(); err != nil {
		return nil, fmt.Errorf("refgraph: usage: %w", err)
	}
	u.r.Duration = time.Since(start)
	return u.r, nil
}

type usageRun struct {
	ctx    context.Context
	snap   *pebble.Snapshot
	dir    string
	memory int
	r      *UsageReport

	repos  []string       // by id, in name order
	ids    map[string]int // repository name -> id
	nsIDs  map[string]int // namespace -> id
	nsOf   []int          // repository id -> namespace id
	ns     []string       // by namespace id
	repoU  []Usage
	nsU    []Usage
	nsSeen []int64 // namespace id -> the last chunk (sequence) it was counted for
	seq    int64
	nsBuf  []int
}

func (u *usageRun) sorter() *extsort.Sorter {
	return extsort.New(extsort.Options{Dir: u.dir, Memory: u.memory,
		Combine: func(acc, _ []byte) []byte { return acc }})
}

func (u *usageRun) run() error {
	v, err := getFrom(u.snap, []byte(keyStats))
	if err != nil {
		return fmt.Errorf("read stats: %w", err)
	}
	var st Stats
	if err := json.Unmarshal(v, &st); err != nil {
		return fmt.Errorf("decode stats: %w", err)
	}
	u.r.LiveStoredBytes, u.r.PendingBytes = st.LiveStoredBytes, st.PendingBytes
	u.r.StoredBytes = st.LiveStoredBytes + st.PendingBytes

	if err := u.loadRepos(); err != nil {
		return err
	}
	// Blob holders: digest\x00<repo id> from the links and manifests.
	blobHolders := u.sorter()
	defer blobHolders.Close()
	var key []byte
	for _, prefix := range []string{prefixLink, prefixMan} {
		err := scanRecords(u.ctx, u.snap, prefix, func(rest, _ []byte) error {
			repo, d, ok := splitKey(rest)
			if !ok {
				return nil // Check reports it
			}
			id := u.id(string(repo))
			key = binary.BigEndian.AppendUint32(append(append(key[:0], d...), 0), uint32(id))
			return blobHolders.Add(key, nil)
		})
		if err != nil {
			return err
		}
	}
	it, err := blobHolders.Sort(u.ctx)
	if err != nil {
		return err
	}
	// Chunk holders: chunk id <repo id>, from each blob's holders and
	// chunks. A pending blob is held as a whole, like one chunk.
	chunkHolders := u.sorter()
	defer chunkHolders.Close()
	var (
		cur     []byte
		holders []int
		pending int64
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		bv, err := getFrom(u.snap, blobKey(digest.Digest(cur)))
		if errors.Is(err, ErrNotFound) {
			return nil // Check reports it
		} else if err != nil {
			return err
		}
		b, err := decodeBlob(bv)
		if err != nil {
			return nil // Check reports it
		}
		if b.kind == KindPending {
			u.account(b.size, holders)
			pending += b.size
		}
		for _, c := range b.chunks {
			for _, h := range holders {
				key = binary.BigEndian.AppendUint32(append(key[:0], c.ID[:]...), uint32(h))
				if err := chunkHolders.Add(key, nil); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for n := 0; it.Next(); n++ {
		if n%1024 == 0 && u.ctx.Err() != nil {
			return u.ctx.Err()
		}
		k := it.Key()
		d, id := k[:len(k)-5], int(binary.BigEndian.Uint32(k[len(k)-4:]))
		if !bytes.Equal(d, cur) {
			if err := flush(); err != nil {
				return err
			}
			cur, holders = append(cur[:0], d...), holders[:0]
		}
		holders = append(holders, id)
	}
	if err := it.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	u.r.UnattributedBytes += st.PendingBytes - pending
	u.r.SortRuns += blobHolders.Runs()
	blobHolders.Close()

	// Join the chunk holders with the chunk records, both in id order.
	ci, err := chunkHolders.Sort(u.ctx)
	if err != nil {
		return err
	}
	more := ci.Next()
	err = scanRecords(u.ctx, u.snap, prefixChunk, func(k, v []byte) error {
		holders = holders[:0]
		for more && bytes.Compare(ci.Key()[:len(ci.Key())-4], k) < 0 {
			more = ci.Next() // held chunk not indexed: Check reports it
		}
		for more && bytes.Equal(ci.Key()[:len(ci.Key())-4], k) {
			holders = append(holders, int(binary.BigEndian.Uint32(ci.Key()[len(ci.Key())-4:])))
			more = ci.Next()
		}
		if len(k) != 32 {
			return nil
		}
		var id [32]byte
		copy(id[:], k)
		c, err := decodeChunk(id, v)
		if err != nil || c.Refs == 0 {
			return nil // not live (or Check's business)
		}
		u.r.Chunks++
		u.account(int64(c.Loc.StoredLen), holders)
		return nil
	})
	if err != nil {
		return err
	}
	if err := ci.Err(); err != nil {
		return err
	}
	u.r.SortRuns += chunkHolders.Runs()
	u.r.Repos, u.r.Namespaces = u.repoU, u.nsU
	return nil
}

// loadRepos numbers the repositories of the catalog in name order.
func (u *usageRun) loadRepos() error {
	u.ids = map[string]int{}
	nsIDs := map[string]int{}
	err := scanRecords(u.ctx, u.snap, prefixRepo, func(rest, _ []byte) error {
		u.addRepo(string(rest), nsIDs)
		return nil
	})
	if err != nil {
		return err
	}
	// Namespaces in name order too (the order remainders go in).
	slices.Sort(u.ns)
	for i, ns := range u.ns {
		nsIDs[ns] = i
		u.nsU[i] = Usage{Name: ns}
	}
	for id, repo := range u.repos {
		u.nsOf[id] = nsIDs[Namespace(repo)]
	}
	u.nsIDs = nsIDs
	return nil
}

func (u *usageRun) addRepo(name string, nsIDs map[string]int) int {
	id := len(u.repos)
	u.repos = append(u.repos, name)
	u.ids[name] = id
	u.repoU = append(u.repoU, Usage{Name: name})
	ns := Namespace(name)
	n, ok := nsIDs[ns]
	if !ok {
		n = len(u.ns)
		nsIDs[ns] = n
		u.ns = append(u.ns, ns)
		u.nsU = append(u.nsU, Usage{Name: ns})
		u.nsSeen = append(u.nsSeen, -1)
	}
	u.nsOf = append(u.nsOf, n)
	return id
}

// id returns a repository's number, numbering one the catalog lacks
// (Check reports it) after the others.
func (u *usageRun) id(name string) int {
	if id, ok := u.ids[name]; ok {
		return id
	}
	return u.addRepo(name, u.nsIDs)
}

// account counts size stored bytes held by holders (repository ids in
// ascending order, distinct) to them and to their namespaces.
func (u *usageRun) account(size int64, holders []int) {
	if len(holders) == 0 {
		u.r.UnattributedBytes += size
		return
	}
	apportion(size, holders, u.repoU)
	u.seq++
	u.nsBuf = u.nsBuf[:0]
	for _, h := range holders {
		if n := u.nsOf[h]; u.nsSeen[n] != u.seq {
			u.nsSeen[n] = u.seq
			u.nsBuf = append(u.nsBuf, n)
		}
	}
	slices.Sort(u.nsBuf)
	apportion(size, u.nsBuf, u.nsU)
}

// apportion counts size to holders: unique to a single one, else shared
// equally, the remainder a byte each to the first.
func apportion(size int64, holders []int, to []Usage) {
	if len(holders) == 1 {
		to[holders[0]].UniqueBytes += size
		return
	}
	k := int64(len(holders))
	q, r := size/k, size%k
	for i, h := range holders {
		share := q
		if int64(i) < r {
			share++
		}
		to[h].SharedBytes += share
		to[h].HeldSharedBytes += size
	}
}
