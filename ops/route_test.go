package ops

import "testing"

func TestParseRoute(t *testing.T) {
	for _, c := range []struct {
		path string
		want Route
	}{
		{"/v2/", Route{Template: RouteBase}},
		{"/v2", Route{Template: RouteBase}},
		{"/v2/_catalog", Route{Template: RouteCatalog}},
		{"/v2/a/b/tags/list", Route{Template: RouteTags, Repo: "a/b"}},
		{"/v2/a/manifests/latest", Route{Template: RouteManifest, Repo: "a"}},
		{"/v2/a/blobs/uploads/", Route{Template: RouteUploads, Repo: "a"}},
		{"/v2/team/app/blobs/uploads/abc%2Fdef", Route{Template: RouteUpload, Repo: "team/app", Upload: "abc/def"}},
		{"/v2/x/blobs/sha256:00", Route{Template: RouteBlob, Repo: "x"}},
		// "blobs" and "manifests" may be components of a name: the route
		// is in the last segments, as the API's router matches it.
		{"/v2/blobs/manifests/blobs/sha256:00", Route{Template: RouteBlob, Repo: "blobs/manifests"}},
		{"/v2/a/blobs/uploads/manifests/v1", Route{Template: RouteManifest, Repo: "a/blobs/uploads"}},
		{"/v2/a/referrers/sha256:00", Route{Template: RouteReferrers, Repo: "a"}},
		{"/chunkyard/v1/a/b/scan/latest", Route{Template: RouteScan, Repo: "a/b"}},
		{"/v2/manifests/x", Route{Template: RouteOther}},
		{"/v2/a/unknown", Route{Template: RouteOther}},
		{"/metrics", Route{Template: RouteOther}},
	} {
		if got := ParseRoute(c.path); got != c.want {
			t.Errorf("ParseRoute(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}
