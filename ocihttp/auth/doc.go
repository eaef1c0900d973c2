// Package auth owns who may do what on chunkyard's registry API:
// authentication (htpasswd basic auth with bcrypt; bearer JWTs issued by
// the built-in docker-token-spec endpoint /token or by an external issuer
// whose public keys or JWKS file are configured), the access rules of the
// configuration (users and groups, repository patterns, the actions pull,
// push and delete, anonymous pull), the WWW-Authenticate challenges, and
// the per-client-IP limit on authentication failures.
//
// It knows no route: the HTTP layer asks Check(w, r, repo, actions...) for
// each repository request, CanRead for filtering (the catalog, mounts),
// and reads the caller's Identity from the request context (FromContext),
// which is also where access logs and metrics find it.
//
// The decisions, in short:
//   - no credentials: the anonymous identity; a request it may not make
//     is answered 401 UNAUTHORIZED with the challenge (Bearer with realm,
//     service and scope when the token endpoint or an external issuer is
//     configured, else Basic);
//   - bad credentials: 401 UNAUTHORIZED, counted against the client IP;
//     too many failures in a minute: 429 TOOMANYREQUESTS;
//   - basic credentials of a known user: the access rules decide; denied
//     is 403 DENIED;
//   - a bearer token: its access claims decide; a token without the
//     needed scope is answered 401 with error="insufficient_scope" so the
//     client fetches a new token, unless the built-in issuer would never
//     grant it (403 DENIED).
//
// A repository the caller may not read is answered 401/403 whether it
// exists or not: the answer never tells a name exists.
package auth
