package scan

import (
	"path"
	"strings"
)

// LayerInventory is one layer of an image and its inventory.
type LayerInventory struct {
	Digest    string
	Inventory *Inventory
}

// Image is what an image holds: its layers' inventories composed bottom
// up, as a container runtime would stack the layers.
type Image struct {
	OS       *OSRelease `json:"os,omitempty"`
	Packages []Package  `json:"packages"`
	Notes    []Note     `json:"notes,omitempty"`
	// Stats adds up the layers' read statistics.
	Stats      ReadStats `json:"stats"`
	Incomplete bool      `json:"incomplete,omitempty"`
}

// Union composes an image's layers, given bottom first, from their
// inventories alone (no layer is read again). A package whose file a
// later layer deletes (a whiteout of it or of a directory above it, an
// opaque directory above it) or replaces (writes the same path) is not
// reported; each package names the layer its file came from, or for an
// OS package the layer since which every rewrite of the package database
// has listed it unchanged (so a base image's packages stay with the base
// layer when a later layer installs more). OS packages get the ecosystem
// and release of the image's os-release.
func Union(layers []LayerInventory) *Image {
	img := &Image{Packages: []Package{}}
	m := mask{exact: map[string]bool{}, dirs: map[string]bool{}}
	var visible [][]Package // per layer, top first
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		inv := l.Inventory
		if inv == nil {
			continue
		}
		var keep []Package
		for _, p := range inv.Packages {
			if !m.hides(p.Path) {
				p.Layer = l.Digest
				keep = append(keep, p)
			}
		}
		visible = append(visible, keep)
		if img.OS == nil && inv.OS != nil && !m.hides(inv.OS.Path) {
			o := *inv.OS
			o.Layer = l.Digest
			img.OS = &o
		}
		for _, n := range inv.Notes {
			if n.Path == "" || !m.hides(n.Path) {
				n.Layer = l.Digest
				img.Notes = append(img.Notes, n)
			}
		}
		addStats(&img.Stats, inv.Stats)
		img.Incomplete = img.Incomplete || inv.Incomplete
		// This layer's deletions and files hide what the layers below have.
		for _, p := range inv.Shadows {
			m.exact[p] = true
		}
		for _, p := range inv.Whiteouts {
			m.exact[p] = true
			m.dirs[p] = true
		}
		for _, p := range inv.Opaque {
			m.dirs[p] = true
		}
	}
	// A package database rewritten by a later layer (apt-get install
	// writes the whole status) still holds the packages of the layers
	// below: a package is attributed to the lowest layer from which every
	// layer writing the same database path has listed it unchanged.
	attributeDatabases(layers, visible)
	installed := map[string]bool{}
	for _, ps := range visible {
		for _, p := range ps {
			if p.Manager == "npm" {
				installed[p.Path] = true
			}
		}
	}
	eco, rel := osEcosystem(img.OS)
	osPackages := false
	for i := len(visible) - 1; i >= 0; i-- { // bottom first
		for _, p := range visible[i] {
			if p.InstallPath != "" && installed[p.InstallPath] {
				continue
			}
			if p.Manager == "dpkg" || p.Manager == "apk" {
				if eco != "" {
					p.Ecosystem = eco
				}
				p.Release = rel
				osPackages = true
			}
			img.Packages = append(img.Packages, p)
		}
	}
	if osPackages && rel == "" {
		what := "no os-release"
		switch {
		case img.OS != nil && eco == "":
			what = "distribution " + img.OS.ID + " is not one the advisories cover (Debian, Ubuntu, Alpine)"
		case img.OS != nil:
			what = "os-release has no VERSION_ID (a testing or unstable release?)"
		}
		img.Notes = append(img.Notes, Note{Message: what + ": OS packages are matched only against advisories that name no release"})
	}
	return img
}

// attributeDatabases moves OS packages to the layer that first recorded
// them. visible holds the layers' visible packages, top layer first.
func attributeDatabases(layers []LayerInventory, visible [][]Package) {
	type key struct{ path, name, version string }
	// Inventories present, bottom first, matching visible (top first).
	var invs []LayerInventory
	for _, l := range layers {
		if l.Inventory != nil {
			invs = append(invs, l)
		}
	}
	has := make([]map[key]bool, len(invs)) // packages, and databases as key{path, "", ""}
	index := func(i int) map[key]bool {
		if has[i] == nil {
			has[i] = map[key]bool{}
			for _, p := range invs[i].Inventory.Packages {
				if p.Manager == "dpkg" || p.Manager == "apk" {
					has[i][key{p.Path, p.Name, p.Version}] = true
					has[i][key{path: p.Path}] = true
				}
			}
		}
		return has[i]
	}
	for v, ps := range visible {
		i := len(invs) - 1 - v // this layer's index, bottom first
		for k := range ps {
			p := &ps[k]
			if p.Manager != "dpkg" && p.Manager != "apk" {
				continue
			}
			// Walk down past layers without this database; stop at one
			// whose database lacks the package.
			kk, db := key{p.Path, p.Name, p.Version}, key{path: p.Path}
			at := i
			for j := i - 1; j >= 0; j-- {
				idx := index(j)
				if !idx[db] {
					continue
				}
				if !idx[kk] {
					break
				}
				at = j
			}
			p.Layer = invs[at].Digest
		}
	}
}

// mask is what the layers above the current one delete or replace.
type mask struct {
	exact map[string]bool // paths replaced or deleted
	dirs  map[string]bool // directories whose contents are hidden
}

func (m mask) hides(p string) bool {
	if m.exact[p] {
		return true
	}
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if m.dirs[d] {
			return true
		}
	}
	return false
}

func addStats(sum *ReadStats, s ReadStats) {
	sum.Uncompressed += s.Uncompressed
	sum.HeaderBytes += s.HeaderBytes
	sum.ContentRead += s.ContentRead
	sum.StoreRead += s.StoreRead
	sum.FilesRead += s.FilesRead
}

// osEcosystem is the OSV ecosystem and release of an os-release:
// ("Debian", "12"), ("Ubuntu", "22.04"), ("Alpine", "v3.20"). A
// distribution the feed does not know gives "", "": its packages keep
// their package manager's default ecosystem with no release, and
// advisories with a release do not match them.
func osEcosystem(o *OSRelease) (string, string) {
	if o == nil {
		return "", ""
	}
	switch strings.ToLower(o.ID) {
	case "debian":
		return EcosystemDebian, o.VersionID
	case "ubuntu":
		return EcosystemUbuntu, o.VersionID
	case "alpine":
		v := o.VersionID
		if parts := strings.SplitN(v, ".", 3); len(parts) >= 2 {
			v = parts[0] + "." + parts[1]
		}
		if v != "" {
			v = "v" + v
		}
		return EcosystemAlpine, v
	}
	return "", ""
}
