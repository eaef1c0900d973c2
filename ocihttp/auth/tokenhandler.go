package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// serveToken is the token endpoint of the docker token spec: GET with
// optional basic auth and service, scope (repeated) and account
// parameters; or the OAuth2 POST form (grant_type=password with username
// and password, as containerd sends). It grants of each requested scope
// what the rules allow the user (anonymous without credentials), possibly
// nothing; only bad credentials are refused.
func (a *Authenticator) serveToken(w http.ResponseWriter, r *http.Request) {
	var user, pass, service string
	var scopes []string
	hasCreds := false
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		service, scopes = q.Get("service"), q["scope"]
		user, pass, hasCreds = r.BasicAuth()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "bad form: "+err.Error())
			return
		}
		service, scopes = r.PostForm.Get("service"), r.PostForm["scope"]
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "password":
			user, pass, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		default:
			oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+gt+" is not supported; use password")
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "GET or POST")
		return
	}
	if service != "" && service != a.cfg.Service {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unknown service "+service)
		return
	}
	ip := clientIP(r)
	now := time.Now()
	if hasCreds {
		if a.limiter.blocked(ip, now) {
			a.refuse(w, r, http.StatusTooManyRequests, "", nil)
			return
		}
		if !a.htpasswd.verify(user, pass) {
			a.limiter.fail(ip, now)
			w.Header().Set("WWW-Authenticate", `Basic realm="chunkyard"`)
			writeCode(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials", nil)
			return
		}
	} else {
		user = ""
	}
	var access []ResourceAccess
	var all []string
	for _, s := range scopes {
		// POST sends scopes space-separated in one value.
		all = append(all, strings.Fields(s)...)
	}
	if len(all) > maxScopes {
		oauthError(w, http.StatusBadRequest, "invalid_scope", fmt.Sprintf("%d scopes asked for, at most %d", len(all), maxScopes))
		return
	}
	for _, one := range all {
		if ra, ok := a.grant(user, one); ok {
			access = append(access, ra)
		}
	}
	tok, err := a.issue(user, access, now)
	if err != nil {
		a.log.Error("signing a token", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "cannot sign a token")
		return
	}
	ttl := int(time.Duration(a.cfg.TokenTTL) / time.Second)
	body := map[string]any{"access_token": tok, "expires_in": ttl, "issued_at": now.UTC().Format(time.RFC3339)}
	if r.Method == http.MethodGet {
		body["token"] = tok
	} else {
		body["scope"] = strings.Join(scopes, " ")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(body)
}

// grant returns what of scope ("type:name:actions") user may have.
func (a *Authenticator) grant(user, scope string) (ResourceAccess, bool) {
	typ, rest, ok1 := strings.Cut(scope, ":")
	i := strings.LastIndex(rest, ":")
	if !ok1 || i <= 0 {
		return ResourceAccess{}, false
	}
	name, actions := rest[:i], strings.Split(rest[i+1:], ",")
	switch typ {
	case "repository":
		allowed := a.rules.allowed(user, name)
		var got []string
		for _, act := range actions {
			if act == "*" {
				got = append(got, allowed...)
			} else if slices.Contains(allowed, act) {
				got = append(got, act)
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		return ResourceAccess{Type: typ, Name: name, Actions: got}, len(got) > 0
	case "registry":
		if name == "catalog" && user != "" && slices.Contains(actions, "*") {
			return ResourceAccess{Type: typ, Name: name, Actions: []string{"*"}}, true
		}
	}
	return ResourceAccess{}, false
}

// maxScopes bounds the scopes one token request may ask for (a docker
// push of an image with mounts asks for a handful).
const maxScopes = 64

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
