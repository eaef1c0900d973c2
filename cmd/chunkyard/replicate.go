package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/replication"
)

// replFlags are serve's replication flags.
type replFlags struct {
	peers     stringList
	config    string
	region    string
	preEncode string
	pullPeer  string
}

func addReplFlags(fs *flag.FlagSet, f *replFlags) {
	fs.Var(&f.peers, "peer", "replicate every repository to the chunkyard at this URL (repeatable; credentials and repository patterns: --replication-config)")
	fs.StringVar(&f.config, "replication-config", "", "replication configuration file (TOML: region, [[peer]] name, url, username, password, repositories)")
	fs.StringVar(&f.preEncode, "pre-encode", "all", "layers replicated from peers into these repositories are kept encoded in the layer cache (the re-encode that verifies them writes it): all, none, or comma-separated repository patterns (team/*, base/**)")
	fs.StringVar(&f.pullPeer, "pull-from-peer", "", "a pull of what is not here fetches it from this peer at chunk level, serves it and keeps it (a peer's name in --replication-config, or a URL; not with --upstream)")
	fs.StringVar(&f.region, "region", "", "this node's region name, the tie-break of tag conflicts (default: the config's, else one chosen at random once and kept in the index)")
}

// load reads the configuration and adds the --peer flags.
func (f *replFlags) load() (replication.Config, error) {
	var cfg replication.Config
	if f.config != "" {
		var err error
		if cfg, err = replication.LoadConfig(f.config); err != nil {
			return cfg, err
		}
	}
	for _, u := range f.peers {
		cfg.Peers = append(cfg.Peers, replication.PeerFromURL(u))
	}
	if f.region != "" {
		cfg.Region = f.region
	}
	if _, err := replication.ParsePreEncode(f.preEncode); err != nil {
		return cfg, fmt.Errorf("--pre-encode: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if f.pullPeer != "" {
		if _, err := f.pullFrom(cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// pullFrom returns the peer --pull-from-peer names: a configured peer by
// name or URL, else a URL (no credentials).
func (f *replFlags) pullFrom(cfg replication.Config) (replication.Peer, error) {
	for _, p := range cfg.Peers {
		if p.Name == f.pullPeer || p.URL == strings.TrimRight(f.pullPeer, "/") {
			return p, nil
		}
	}
	c := replication.Config{Peers: []replication.Peer{replication.PeerFromURL(f.pullPeer)}}
	if err := c.Validate(); err != nil {
		return replication.Peer{}, fmt.Errorf("--pull-from-peer: not a configured peer, and %w", err)
	}
	return c.Peers[0], nil
}

// peerFallback is the pull-through of --pull-from-peer, nil without it.
func (f *replFlags) peerFallback(cfg replication.Config, graph *refgraph.Graph, store *chunkstore.Store, log *slog.Logger) (*replication.PeerFallback, error) {
	if f.pullPeer == "" {
		return nil, nil
	}
	p, err := f.pullFrom(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("pull-through from a peer", "peer", p.Name)
	return replication.NewPeerFallback(p, graph, store, nil, log), nil
}

const regionSetting = "replication/region"

// startReplication turns the outbox on for cfg's peers and returns the
// protocol's receiver (served on the normal address) and the sender (nil
// without peers) to run in the background.
func startReplication(cfg replication.Config, rf replFlags, graph *refgraph.Graph, store *chunkstore.Store, svc *registry.Service, layerCache *chunkstore.FileCache, log *slog.Logger) (*replication.Receiver, *replication.Sender, error) {
	pre, err := replication.ParsePreEncode(rf.preEncode)
	if err != nil {
		return nil, nil, fmt.Errorf("--pre-encode: %w", err)
	}
	region := cfg.Region
	if region == "" {
		v, err := graph.Setting(regionSetting)
		switch {
		case err == nil:
			region = string(v)
		case errors.Is(err, refgraph.ErrNotFound):
			var b [6]byte
			_, _ = rand.Read(b[:])
			region = "r-" + hex.EncodeToString(b[:])
			if err := graph.PutSetting(regionSetting, []byte(region)); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, err
		}
	}
	names := make([]string, len(cfg.Peers))
	for i, p := range cfg.Peers {
		names[i] = p.Name
	}
	if err := graph.StartOutbox(region, names); err != nil {
		return nil, nil, fmt.Errorf("replication: %w", err)
	}
	rc := replication.NewReceiver(graph, store, svc, replication.ReceiverOptions{Logger: log, LayerCache: layerCache, PreEncode: pre})
	var sender *replication.Sender
	if len(cfg.Peers) > 0 {
		sender = replication.NewSender(graph, store, cfg.Peers, replication.SenderOptions{Logger: log})
		rc.Status = func() any { return map[string]any{"region": region, "peers": sender.Stats()} }
		log.Info("replicating", "region", region, "peers", names)
	} else {
		rc.Status = func() any { return map[string]any{"region": region} }
	}
	return rc, sender, nil
}
