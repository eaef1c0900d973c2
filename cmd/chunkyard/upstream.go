package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/upstream"
)

// upstreamFlags are serve's pull-through cache flags.
type upstreamFlags struct {
	url, username, passwordFile string
	tagTTL                      time.Duration
}

func addUpstreamFlags(fs *flag.FlagSet, f *upstreamFlags) {
	fs.StringVar(&f.url, "upstream", "", "pull-through cache of this registry (e.g. https://registry-1.docker.io): a pull of what is not here fetches it from there, serves it and keeps it; every repository maps to the same name upstream (on Docker Hub a one-component name gets library/)")
	fs.StringVar(&f.username, "upstream-username", "", "user name for --upstream (default: credentials from the Docker config, ~/.docker/config.json and its credential helpers, else anonymous)")
	fs.StringVar(&f.passwordFile, "upstream-password-file", "", "file holding the password or token of --upstream-username")
	fs.DurationVar(&f.tagTTL, "upstream-tag-ttl", time.Minute, "how long a tag resolved upstream is trusted before a pull asks the upstream again (0: every pull asks; the local tag is served when the upstream cannot be reached)")
}

// fallback returns the upstream client the flags describe, nil if none.
func (f upstreamFlags) fallback(maxManifest int64, log *slog.Logger) (registry.Fallback, error) {
	if f.url == "" {
		if f.username != "" || f.passwordFile != "" {
			return nil, fmt.Errorf("--upstream-username and --upstream-password-file need --upstream")
		}
		return nil, nil
	}
	if f.tagTTL < 0 {
		return nil, fmt.Errorf("--upstream-tag-ttl %s: must be 0 or more", f.tagTTL)
	}
	if (f.username == "") != (f.passwordFile == "") {
		return nil, fmt.Errorf("--upstream-username and --upstream-password-file go together")
	}
	opts := upstream.Options{URL: f.url, Username: f.username, MaxManifestSize: maxManifest, Logger: log}
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--upstream-password-file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	c, err := upstream.New(opts)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	return c, nil
}
