package scan

// AnalyzerVersion is the version of the analyzers' output. It is part of
// an inventory's cache key (layer digest, AnalyzerVersion): change it
// whenever a change to the analyzers would give a layer a different
// inventory, and every layer is analyzed again.
const AnalyzerVersion = 1

// Package managers and language ecosystems an inventory names. Ecosystem
// values are OSV's ecosystem names; OS packages get theirs (Debian,
// Ubuntu, Alpine) and a release from the image's os-release when layers
// are composed (see Union).
const (
	EcosystemDebian = "Debian"
	EcosystemUbuntu = "Ubuntu"
	EcosystemAlpine = "Alpine"
	EcosystemPyPI   = "PyPI"
	EcosystemNPM    = "npm"
	EcosystemGo     = "Go"
	EcosystemMaven  = "Maven"
)

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Ecosystem is OSV's: PyPI, npm, Go, Maven; for OS packages the
	// distribution (Debian, Ubuntu, Alpine).
	Ecosystem string `json:"ecosystem"`
	// Release is the OS release OS packages belong to ("12", "v3.20"),
	// set when layers are composed, from the image's os-release.
	Release string `json:"release,omitempty"`
	// Manager is what recorded the package: dpkg, apk, python, npm,
	// npm-lock, go-binary.
	Manager string `json:"manager"`
	// Path is the file the package was read from.
	Path string `json:"path"`
	// Source and SourceVersion are an OS package's source package (dpkg
	// Source:, apk origin); advisories of Debian name source packages.
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	// OwnedBy is the OS package that installed Path, where known: a
	// language package that the distribution ships.
	OwnedBy string `json:"owned_by,omitempty"`
	// InstallPath, for a package read from a lock file, is where its
	// package.json would be once installed: if the image has it, the
	// installed package is reported and the locked one is not.
	InstallPath string `json:"install_path,omitempty"`
	// Layer is the digest of the layer Path came from (set by Union).
	Layer string `json:"layer,omitempty"`
}

// OSRelease is what os-release says about the distribution.
type OSRelease struct {
	ID              string `json:"id"`
	IDLike          string `json:"id_like,omitempty"`
	VersionID       string `json:"version_id,omitempty"`
	VersionCodename string `json:"version_codename,omitempty"`
	PrettyName      string `json:"pretty_name,omitempty"`
	Path            string `json:"path"`
	Layer           string `json:"layer,omitempty"`
}

// Note says something the analyzers could not do for one file (or for
// the layer, with an empty Path): a file too large, a record that does
// not parse, a database format not read.
type Note struct {
	Path    string `json:"path,omitempty"`
	Layer   string `json:"layer,omitempty"`
	Message string `json:"message"`
}

// Inventory is what one layer holds: its packages, its os-release, and
// what it deletes from the layers below (whiteouts), everything composing
// an image's layers needs without reading them again.
type Inventory struct {
	AnalyzerVersion int        `json:"analyzer_version"`
	OS              *OSRelease `json:"os,omitempty"`
	Packages        []Package  `json:"packages"`
	// Whiteouts are the paths this layer deletes from the layers below
	// (".wh.name" entries), Opaque the directories whose lower contents it
	// hides (".wh..wh..opq").
	Whiteouts []string `json:"whiteouts,omitempty"`
	Opaque    []string `json:"opaque,omitempty"`
	// Shadows are the paths this layer writes that an analyzer reads in
	// any layer (package databases, metadata files, executables other
	// than symbolic links): such a file replaces a lower layer's, and
	// with it the packages read there.
	Shadows []string  `json:"shadows,omitempty"`
	Notes   []Note    `json:"notes,omitempty"`
	Stats   ReadStats `json:"stats"`
	// Incomplete says the layer's tar broke before its end: the entries
	// before the break were analyzed (a note says where).
	Incomplete bool `json:"incomplete,omitempty"`
}
