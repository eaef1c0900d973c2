package gc

import (
	"bytes"
	"fmt"
	"regexp"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a GC configuration: retention policies and how reclaiming
// runs. It is read from TOML (see Example) and served as JSON by the
// admin API, with the same field names.
type Config struct {
	// Interval between scheduled runs in `chunkyard serve`; 0 disables
	// them (runs on demand only). Default 1h.
	Interval Duration `toml:"interval" json:"interval"`
	// GracePeriod: a blob link no manifest uses and a pack the index
	// does not know are reclaimed only after this long, so that a push
	// that uploads layers before its manifest, or is still writing, is
	// never cut off. A blob counts as unreferenced from the moment its
	// last link became unused, so it waits out this one period in all,
	// not one per step. Default 23h: with hourly runs, a blob nothing uses
	// is gone from the index within 24 hours.
	GracePeriod Duration `toml:"grace_period" json:"grace_period"`
	// PackGracePeriod: a repacked pack is deleted this long after the
	// index stopped pointing into it, so pulls that looked chunks up
	// before still read it. Default 1h (serve runs the deletion when it
	// is due, between scheduled runs).
	PackGracePeriod Duration `toml:"pack_grace_period" json:"pack_grace_period"`
	// RepackBelow: packs whose live fraction (live bytes / bytes) is
	// below it are rewritten. Default 0.95, from what each costs on S3: a
	// rewrite of a 64 MiB pack is a GET and a PUT, about $0.00001 (plus
	// copying at most 64 MiB inside the region), while 5% of it dead is
	// 3.2 MiB, about $0.00007 a month at $0.023/GB-month: the rewrite
	// pays for itself within five days, so no pack keeps more than 5%
	// dead bytes for long.
	RepackBelow float64 `toml:"repack_below" json:"repack_below"`
	// SmallPack: sealed packs below this many bytes (a server stopped with
	// a pack half full) are merged when there are at least two. Default
	// 16 MiB; never more than half the pack size.
	SmallPack int64 `toml:"small_pack" json:"small_pack"`
	// MaxRepackBytes bounds the live bytes one run copies (0: no bound).
	MaxRepackBytes int64 `toml:"max_repack_bytes" json:"max_repack_bytes"`
	// Policies apply to repositories; the first whose Repos matches a
	// repository is its policy. A repository no policy matches keeps all
	// its tags and manifests (only unreferenced data is reclaimed).
	Policies []Policy `toml:"policy" json:"policies"`
}

// Policy is a retention policy for the repositories it matches. A tag
// is deleted if it is not protected (KeepTags, KeepPulledWithin) and a
// deletion rule selects it (beyond KeepLast, older than
// DeleteTagsOlderThan). An untagged manifest is deleted when older than
// DeleteUntaggedOlderThan, unless an index of the repository names it,
// it was pulled within KeepPulledWithin, or it is a referrer whose
// subject is still in the repository.
type Policy struct {
	Repos                   string   `toml:"repos" json:"repos"`                                             // regular expression over the repository name (anchored)
	KeepLast                int      `toml:"keep_last" json:"keep_last,omitempty"`                           // keep the N most recently pushed tags; 0: no such rule
	KeepTags                string   `toml:"keep_tags" json:"keep_tags,omitempty"`                           // tags matching this regular expression (anchored) are kept
	DeleteTagsOlderThan     Duration `toml:"delete_tags_older_than" json:"delete_tags_older_than,omitempty"` // tags pushed longer ago are deleted
	KeepPulledWithin        Duration `toml:"keep_pulled_within" json:"keep_pulled_within,omitempty"`         // manifests pulled this recently are kept, with their tags
	DeleteUntaggedOlderThan Duration `toml:"delete_untagged_older_than" json:"delete_untagged_older_than,omitempty"`

	repos, keepTags *regexp.Regexp
}

// Duration is a time.Duration written as "36h" or "7d" (days).
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n := len(s); n > 1 && s[n-1] == 'd' {
		var days float64
		if _, err := fmt.Sscanf(s[:n-1], "%g", &days); err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(days * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults.
const (
	DefaultInterval        = Duration(time.Hour)
	DefaultGracePeriod     = Duration(23 * time.Hour)
	DefaultPackGracePeriod = Duration(time.Hour)
	DefaultRepackBelow     = 0.95
	DefaultSmallPack       = 16 << 20
)

// Default is the configuration without a file: no retention policy, only
// reclaiming of what nothing references.
func Default() Config {
	return Config{
		Interval:        DefaultInterval,
		GracePeriod:     DefaultGracePeriod,
		PackGracePeriod: DefaultPackGracePeriod,
		RepackBelow:     DefaultRepackBelow,
		SmallPack:       DefaultSmallPack,
	}
}

// Example is a documented configuration file.
const Example = `# chunkyard GC configuration (TOML). Durations: "90m", "36h", "7d".
interval = "1h"            # scheduled runs in serve; "0s": on demand only
grace_period = "23h"       # blobs nothing uses (and unknown packs) wait this long: with
                           # hourly runs, unreferenced blobs leave the index within 24 h
pack_grace_period = "1h"   # repacked packs are deleted this long after the switch
repack_below = 0.95        # rewrite packs more than 5% dead
small_pack = 16777216      # merge sealed packs smaller than this
max_repack_bytes = 0       # live bytes copied per run, 0: no bound

# The first policy whose repos pattern matches a repository applies.
[[policy]]
repos = "ci/.*"
keep_last = 10
keep_tags = "v[0-9]+(\\.[0-9]+)*|latest|main"
delete_tags_older_than = "30d"
keep_pulled_within = "7d"
delete_untagged_older_than = "2d"
`

// Parse reads a TOML configuration over the defaults and checks it.
func Parse(b []byte) (Config, error) {
	c := Default()
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		return Config{}, fmt.Errorf("gc config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, fmt.Errorf("gc config: unknown keys %v", und)
	}
	return c, c.Check()
}

// Check validates c and compiles its patterns.
func (c *Config) Check() error {
	switch {
	case c.Interval < 0 || c.GracePeriod < 0 || c.PackGracePeriod < 0:
		return fmt.Errorf("gc config: negative duration")
	case c.RepackBelow < 0 || c.RepackBelow > 1:
		return fmt.Errorf("gc config: repack_below %g not in [0, 1]", c.RepackBelow)
	case c.SmallPack < 0 || c.MaxRepackBytes < 0:
		return fmt.Errorf("gc config: negative size")
	}
	for i := range c.Policies {
		p := &c.Policies[i]
		var err error
		if p.repos, err = regexp.Compile("^(?:" + p.Repos + ")$"); err != nil {
			return fmt.Errorf("gc config: policy %d: repos: %w", i+1, err)
		}
		if p.KeepTags != "" {
			if p.keepTags, err = regexp.Compile("^(?:" + p.KeepTags + ")$"); err != nil {
				return fmt.Errorf("gc config: policy %d: keep_tags: %w", i+1, err)
			}
		}
		if p.KeepLast < 0 || p.DeleteTagsOlderThan < 0 || p.KeepPulledWithin < 0 || p.DeleteUntaggedOlderThan < 0 {
			return fmt.Errorf("gc config: policy %d: negative value", i+1)
		}
	}
	return nil
}

// policyFor returns the policy of repo, nil if none.
func (c *Config) policyFor(repo string) *Policy {
	for i := range c.Policies {
		if c.Policies[i].repos.MatchString(repo) {
			return &c.Policies[i]
		}
	}
	return nil
}
