package ocihttp

import "github.com/opencontainers/image-spec/specs-go"

var specsVersioned = specs.Versioned{SchemaVersion: 2}
