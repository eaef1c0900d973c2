package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkCheck measures what authentication adds to one request:
// Middleware + Check around a handler that does nothing, for a request
// with basic auth (bcrypt cached after the first check), with a bearer
// token (ES256 verify), and without authentication ("off": the handler
// alone) as the baseline.
func BenchmarkCheck(b *testing.B) {
	a, err := New(Config{Htpasswd: htpasswdFile(&testing.T{}, "dev", "pw")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := a.issue("dev", []ResourceAccess{{Type: "repository", Name: "team/app", Actions: []string{"pull"}}}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Check(w, r, "team/app", Pull) {
			w.WriteHeader(http.StatusOK)
		}
	})
	for _, c := range []struct {
		name, authz string
		h           http.Handler
	}{
		{"off", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })},
		{"basic", "Basic ZGV2OnB3", a.Middleware(ok)},
		{"bearer", "Bearer " + tok, a.Middleware(ok)},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v2/team/app/tags/list", nil)
			r.RemoteAddr = "192.0.2.1:1"
			if c.authz != "" {
				r.Header.Set("Authorization", c.authz)
			}
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
