package replication

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/BurntSushi/toml"
)

// Peer is a region this node replicates to.
type Peer struct {
	// Name keys the peer's position in the outbox: keep it stable (the
	// URL if empty). Renaming a peer starts it afresh at the end of the
	// log.
	Name string `toml:"name"`
	URL  string `toml:"url"` // the peer's normal address, e.g. https://eu.registry.example
	// Username and Password are sent as basic auth on every request to
	// the peer (an account with push and delete permission there).
	Username string `toml:"username"`
	Password string `toml:"password"`
	// Repositories selects what is replicated to this peer: patterns of
	// path.Match ("team/*"), "prefix/**" for everything under prefix, or
	// "**" for all; empty means all.
	Repositories []string `toml:"repositories"`
}

// Config is the replication configuration file (TOML):
//
//	region = "eu-west"          # this node's region name (tag conflict tie-break)
//
//	[[peer]]
//	name = "us-east"
//	url = "https://us-east.registry.example"
//	username = "replicator"
//	password = "..."
//	repositories = ["base/**", "team/app"]
type Config struct {
	Region string `toml:"region"`
	Peers  []Peer `toml:"peer"`
}

// LoadConfig reads a configuration file.
func LoadConfig(file string) (Config, error) {
	var c Config
	md, err := toml.DecodeFile(file, &c)
	if err != nil {
		return c, fmt.Errorf("replication config %s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("replication config %s: unknown keys %v", file, und)
	}
	return c, nil
}

// PeerFromURL is the peer of a --peer flag: everything replicated.
func PeerFromURL(u string) Peer { return Peer{URL: u} }

// Validate checks the peers and fills in defaults.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i := range c.Peers {
		p := &c.Peers[i]
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("replication peer %q: url %q: want http(s)://host[:port]", p.Name, p.URL)
		}
		p.URL = strings.TrimRight(p.URL, "/")
		if p.Name == "" {
			p.Name = p.URL
		}
		if seen[p.Name] {
			return fmt.Errorf("replication peer %q named twice", p.Name)
		}
		seen[p.Name] = true
		for _, pat := range p.Repositories {
			if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil {
				return fmt.Errorf("replication peer %q: repository pattern %q: %w", p.Name, pat, err)
			}
		}
	}
	if strings.ContainsRune(c.Region, 0) {
		return errors.New("replication region: NUL in name")
	}
	return nil
}

// Matches reports whether repo is replicated to p.
func (p Peer) Matches(repo string) bool {
	if len(p.Repositories) == 0 {
		return true
	}
	for _, pat := range p.Repositories {
		switch {
		case pat == "**":
			return true
		case strings.HasSuffix(pat, "/**"):
			prefix := strings.TrimSuffix(pat, "/**")
			if ok, _ := path.Match(prefix, repo); ok {
				return true
			}
			// repo under a directory matching prefix
			for i := len(repo) - 1; i > 0; i-- {
				if repo[i] == '/' {
					if ok, _ := path.Match(prefix, repo[:i]); ok {
						return true
					}
				}
			}
		default:
			if ok, _ := path.Match(pat, repo); ok {
				return true
			}
		}
	}
	return false
}

// ParsePreEncode parses a --pre-encode value: "all", "none", or
// comma-separated repository patterns.
func ParsePreEncode(v string) (func(repo string) bool, error) {
	switch v {
	case "all":
		return func(string) bool { return true }, nil
	case "none", "":
		return nil, nil
	}
	p := Peer{Repositories: strings.Split(v, ",")}
	for _, pat := range p.Repositories {
		if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", pat, err)
		}
	}
	return p.Matches, nil
}
