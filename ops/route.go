package ops

import (
	"net/url"
	"strings"
)

// Route is what a request path names: the route template of the
// distribution API (the label requests are counted by: a bounded set),
// the repository and, for an upload session, its id.
type Route struct {
	Template string
	Repo     string
	Upload   string
}

// Route templates.
const (
	RouteBase       = "/v2/"
	RouteCatalog    = "/v2/_catalog"
	RouteTags       = "/v2/{name}/tags/list"
	RouteManifest   = "/v2/{name}/manifests/{reference}"
	RouteUploads    = "/v2/{name}/blobs/uploads/"
	RouteUpload     = "/v2/{name}/blobs/uploads/{uuid}"
	RouteBlob       = "/v2/{name}/blobs/{digest}"
	RouteReferrers  = "/v2/{name}/referrers/{digest}"
	RouteScan       = "/chunkyard/v1/{name}/scan/{reference}"
	RouteOther      = "other"
	routeV2Prefix   = "/v2/"
	routeScanPrefix = "/chunkyard/v1/"
)

// ParseRoute returns the route of an (escaped) request path, as the
// registry API's router matches it: the name is everything before the
// route's last segments.
func ParseRoute(path string) Route {
	var rest string
	switch {
	case path == "/v2" || path == routeV2Prefix:
		return Route{Template: RouteBase}
	case path == RouteCatalog:
		return Route{Template: RouteCatalog}
	case strings.HasPrefix(path, routeV2Prefix):
		rest = path[len(routeV2Prefix):]
	case strings.HasPrefix(path, routeScanPrefix):
		seg := strings.Split(path[len(routeScanPrefix):], "/")
		if n := len(seg); n >= 3 && seg[n-2] == "scan" {
			return Route{Template: RouteScan, Repo: unescape(strings.Join(seg[:n-2], "/"))}
		}
		return Route{Template: RouteOther}
	default:
		return Route{Template: RouteOther}
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	name := func(k int) string {
		if n-k < 1 {
			return ""
		}
		return unescape(strings.Join(seg[:n-k], "/"))
	}
	var r Route
	switch {
	case n >= 4 && seg[n-3] == "blobs" && seg[n-2] == "uploads":
		r = Route{Template: RouteUpload, Repo: name(3), Upload: unescape(seg[n-1])}
		if seg[n-1] == "" {
			r = Route{Template: RouteUploads, Repo: name(3)}
		}
	case n >= 3 && seg[n-2] == "tags" && seg[n-1] == "list":
		r = Route{Template: RouteTags, Repo: name(2)}
	case n >= 3 && seg[n-2] == "manifests":
		r = Route{Template: RouteManifest, Repo: name(2)}
	case n >= 3 && seg[n-2] == "blobs":
		r = Route{Template: RouteBlob, Repo: name(2)}
	case n >= 3 && seg[n-2] == "referrers":
		r = Route{Template: RouteReferrers, Repo: name(2)}
	default:
		return Route{Template: RouteOther}
	}
	if r.Repo == "" {
		return Route{Template: RouteOther}
	}
	return r
}

func unescape(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}
