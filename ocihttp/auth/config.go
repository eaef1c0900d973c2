package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Actions on a repository.
const (
	Pull   = "pull"
	Push   = "push"
	Delete = "delete"
)

// Anonymous is the user name rules use for callers without credentials;
// "*" in a rule's users means any authenticated user.
const Anonymous = "anonymous"

// Config is the [auth] section of the configuration file.
type Config struct {
	// Htpasswd is an htpasswd file of bcrypt hashes (htpasswd -B). Its
	// users log in with basic auth, on /v2/ and on the token endpoint.
	Htpasswd string `toml:"htpasswd"`
	// Token turns the built-in token endpoint (/token) on; default: on
	// when Htpasswd is set. Off, the challenge is Basic (or Bearer naming
	// the external Realm, when trusted keys are set).
	Token *bool `toml:"token"`
	// Realm is the token endpoint's URL in challenges; default
	// <scheme>://<host of the request>/token.
	Realm string `toml:"realm"`
	// Service is the token audience ("service" in the token spec);
	// default "chunkyard".
	Service string `toml:"service"`
	// Issuer is the built-in endpoint's "iss"; default "chunkyard".
	Issuer string `toml:"issuer"`
	// TokenTTL is how long an issued token is valid; default 5m.
	TokenTTL Duration `toml:"token-ttl"`
	// TokenKey is a PEM private key (EC or RSA) the built-in endpoint
	// signs with; default: a P-256 key made at start (tokens do not
	// survive a restart, clients fetch new ones).
	TokenKey string `toml:"token-key"`
	// TrustedKeys are PEM files (public keys or certificates) of external
	// token issuers; JWKS is a JSON Web Key Set file. Tokens they sign
	// are accepted with the access their claims grant.
	TrustedKeys []string `toml:"trusted-keys"`
	JWKS        string   `toml:"jwks"`
	// TrustedIssuer, if set, is the "iss" external tokens must carry.
	TrustedIssuer string `toml:"trusted-issuer"`
	// Admins are the users (or "group:NAME") allowed the admin API.
	Admins []string `toml:"admins"`
	// Groups maps a group name to its users.
	Groups map[string][]string `toml:"groups"`
	// Access are the rules; none: every htpasswd user may do everything
	// and anonymous nothing.
	Access []Rule `toml:"access"`
	// MaxFailures is how many failed logins one client IP may make per
	// minute before it is answered 429 (default 10; negative: no limit).
	MaxFailures int `toml:"max-failures"`
}

// Rule grants actions on repositories matching Repos to Users.
type Rule struct {
	// Repos are patterns: path.Match syntax per path segment, and "**"
	// for any number of segments ("team-a/**", "*/public", "**").
	Repos []string `toml:"repos"`
	// Users are user names, "group:NAME", "*" (any authenticated user) or
	// "anonymous".
	Users []string `toml:"users"`
	// Actions are pull, push, delete, or "*" for all three.
	Actions []string `toml:"actions"`
}

// Duration is a time.Duration written as "5m" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Enabled reports whether the configuration turns authentication on.
func (c *Config) Enabled() bool {
	return c.Htpasswd != "" || len(c.TrustedKeys) > 0 || c.JWKS != ""
}

func (c *Config) tokenEndpoint() bool {
	if c.Token != nil {
		return *c.Token
	}
	return c.Htpasswd != ""
}

// Validate checks the configuration and fills in defaults; errors name
// the bad key.
func (c *Config) Validate() error {
	if c.Service == "" {
		c.Service = "chunkyard"
	}
	if c.Issuer == "" {
		c.Issuer = "chunkyard"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = Duration(5 * time.Minute)
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("auth.token-ttl: must be positive")
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 10
	}
	if c.tokenEndpoint() && c.Htpasswd == "" {
		return fmt.Errorf("auth.token: the built-in token endpoint needs auth.htpasswd")
	}
	if !c.Enabled() && (len(c.Access) > 0 || len(c.Admins) > 0) {
		return fmt.Errorf("auth.access/auth.admins: set auth.htpasswd, auth.trusted-keys or auth.jwks too")
	}
	for g, users := range c.Groups {
		if g == "" || strings.ContainsAny(g, ":*") {
			return fmt.Errorf("auth.groups: bad group name %q", g)
		}
		for _, u := range users {
			if u == "" || strings.ContainsAny(u, ":*") {
				return fmt.Errorf("auth.groups.%s: bad user name %q", g, u)
			}
		}
	}
	checkUser := func(key, u string) error {
		if g, ok := strings.CutPrefix(u, "group:"); ok {
			if _, ok := c.Groups[g]; !ok {
				return fmt.Errorf("%s: group %q is not in auth.groups", key, g)
			}
		} else if u == "" {
			return fmt.Errorf("%s: empty user name", key)
		}
		return nil
	}
	for _, a := range c.Admins {
		if err := checkUser("auth.admins", a); err != nil {
			return err
		}
	}
	for i, r := range c.Access {
		key := fmt.Sprintf("auth.access[%d]", i)
		if len(r.Repos) == 0 || len(r.Users) == 0 || len(r.Actions) == 0 {
			return fmt.Errorf("%s: needs repos, users and actions", key)
		}
		for _, p := range r.Repos {
			if err := checkPattern(p); err != nil {
				return fmt.Errorf("%s.repos: %w", key, err)
			}
		}
		for _, u := range r.Users {
			if err := checkUser(key+".users", u); err != nil {
				return err
			}
		}
		for _, a := range r.Actions {
			if !slices.Contains([]string{Pull, Push, Delete, "*"}, a) {
				return fmt.Errorf("%s.actions: %q is not pull, push, delete or *", key, a)
			}
		}
		if slices.Contains(r.Users, Anonymous) && !slices.Equal(r.Actions, []string{Pull}) {
			return fmt.Errorf("%s: anonymous may only be granted pull", key)
		}
	}
	return nil
}

func checkPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	return nil
}

// matchRepo reports whether repository name matches pattern: segments
// match with path.Match, "**" matches any number of segments (also none).
func matchRepo(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// rules decides by the configured access rules.
type rules struct {
	cfg *Config
}

// member reports whether user (authenticated unless user is "") is
// named by entry.
func (r rules) member(entry, user string) bool {
	switch {
	case entry == Anonymous:
		return user == ""
	case entry == "*":
		return user != ""
	case user == "":
		return false
	case strings.HasPrefix(entry, "group:"):
		return slices.Contains(r.cfg.Groups[entry[len("group:"):]], user)
	}
	return entry == user
}

// allowed returns the actions user ("": anonymous) may do on repo.
func (r rules) allowed(user, repo string) []string {
	if len(r.cfg.Access) == 0 {
		if user == "" {
			return nil
		}
		return []string{Pull, Push, Delete}
	}
	var out []string
	for _, rule := range r.cfg.Access {
		if !slices.ContainsFunc(rule.Users, func(e string) bool { return r.member(e, user) }) {
			continue
		}
		if !slices.ContainsFunc(rule.Repos, func(p string) bool { return matchRepo(p, repo) }) {
			continue
		}
		for _, a := range rule.Actions {
			if a == "*" {
				out = append(out, Pull, Push, Delete)
			} else {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// admin reports whether user may use the admin API.
func (r rules) admin(user string) bool {
	return user != "" && slices.ContainsFunc(r.cfg.Admins, func(e string) bool { return r.member(e, user) })
}

// anyAnonymous reports whether some rule grants anonymous callers
// anything.
func (r rules) anyAnonymous() bool {
	for _, rule := range r.cfg.Access {
		if slices.Contains(rule.Users, Anonymous) {
			return true
		}
	}
	return false
}
