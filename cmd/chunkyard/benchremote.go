package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fetchLayout copies the image or index ref names from its registry into
// a new OCI layout in dir (credentials from the Docker config, as docker
// and crane use), so that the estimator can read its blobs as often as it
// needs. platform, if set ("linux/amd64"), picks one image of an index.
func fetchLayout(ctx context.Context, ref, dir string, insecure bool, platform string, log io.Writer) error {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return fmt.Errorf("bench estimate: %q is neither a directory nor an image reference: %w", ref, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
		ropts = append(ropts, remote.WithPlatform(*p))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return fmt.Errorf("bench estimate: %s: %w", ref, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "fetching %s (%s) into a temporary layout\n", ref, desc.Digest)
	if desc.MediaType.IsIndex() && platform == "" {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return p.AppendIndex(idx)
	}
	img, err := desc.Image() // with a platform: that image of an index
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// fetchAll turns every argument that is not a directory into a temporary
// layout; cleanup removes them.
func fetchAll(ctx context.Context, args []string, insecure bool, platform string, log io.Writer) (dirs []string, cleanup func(), err error) {
	var temps []string
	cleanup = func() {
		for _, t := range temps {
			os.RemoveAll(t)
		}
	}
	for _, a := range args {
		fi, statErr := os.Stat(a)
		if statErr == nil && fi.IsDir() {
			dirs = append(dirs, a)
			continue
		}
		if statErr == nil {
			cleanup()
			return nil, nil, fmt.Errorf("bench estimate: %s is a file, not an OCI layout directory", a)
		}
		if looksLikePath(a) {
			cleanup()
			return nil, nil, fmt.Errorf("bench estimate: no such OCI layout directory: %w", statErr)
		}
		t, err := os.MkdirTemp("", "chunkyard-estimate-")
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		temps = append(temps, t)
		if err := fetchLayout(ctx, a, t, insecure, platform, log); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("%w (and there is no directory %s)", err, a)
		}
		dirs = append(dirs, t)
	}
	return dirs, cleanup, nil
}

// looksLikePath reports whether a names a file system path rather than an
// image reference: it starts like one (/, ./, ../, ~), or its first
// element is a directory here.
func looksLikePath(a string) bool {
	for _, p := range []string{"/", "./", "../", "~", "."} {
		if strings.HasPrefix(a, p) {
			return true
		}
	}
	first, _, ok := strings.Cut(a, "/")
	if !ok {
		return false
	}
	fi, err := os.Stat(first)
	return err == nil && fi.IsDir()
}
