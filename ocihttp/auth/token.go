package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ResourceAccess is one entry of a token's "access" claim (docker token
// spec).
type ResourceAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claims are a registry token's claims.
type claims struct {
	jwt.RegisteredClaims
	Access []ResourceAccess `json:"access"`
}

// signer is the built-in issuer's key.
type signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
}

func newSigner(path string) (*signer, error) {
	var key crypto.Signer
	if path == "" {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth.token-key: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("auth.token-key %s: no PEM block", path)
		}
		k, err := parsePrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth.token-key %s: %w", path, err)
		}
		key = k
	}
	s := &signer{key: key}
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			s.method = jwt.SigningMethodES256
		case elliptic.P384():
			s.method = jwt.SigningMethodES384
		default:
			return nil, fmt.Errorf("auth.token-key: unsupported curve %s", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		s.method = jwt.SigningMethodRS256
	case ed25519.PublicKey:
		s.method = jwt.SigningMethodEdDSA
	default:
		return nil, fmt.Errorf("auth.token-key: unsupported key type %T", k)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	s.kid = hex.EncodeToString(sum[:12])
	return s, nil
}

func parsePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, EC or PKCS#1 private key")
}

// issue signs a token for subject with access.
func (a *Authenticator) issue(subject string, access []ResourceAccess, now time.Time) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{a.cfg.Service},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Duration(a.cfg.TokenTTL))),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		Access: access,
	}
	t := jwt.NewWithClaims(a.signer.method, c)
	t.Header["kid"] = a.signer.kid
	return t.SignedString(a.signer.key)
}

// verifier checks tokens from the built-in issuer and external ones.
type verifier struct {
	keys map[string]crypto.PublicKey // by kid ("" for PEM files without one)
	anon []crypto.PublicKey          // keys tried when the kid matches none
}

func (v *verifier) add(kid string, k crypto.PublicKey) {
	if kid != "" {
		v.keys[kid] = k
	}
	v.anon = append(v.anon, k)
}

func loadPEMKeys(v *verifier, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("auth.trusted-keys: %w", err)
	}
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var k crypto.PublicKey
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("auth.trusted-keys %s: %w", path, err)
			}
			k = cert.PublicKey
		case "PUBLIC KEY":
			if k, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
				return fmt.Errorf("auth.trusted-keys %s: %w", path, err)
			}
		case "RSA PUBLIC KEY":
			if k, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
				return fmt.Errorf("auth.trusted-keys %s: %w", path, err)
			}
		default:
			return fmt.Errorf("auth.trusted-keys %s: PEM block %q is not a public key or certificate", path, block.Type)
		}
		v.add("", k)
		n++
	}
	if n == 0 {
		return fmt.Errorf("auth.trusted-keys %s: no PEM public key or certificate", path)
	}
	return nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func loadJWKS(v *verifier, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("auth.jwks: %w", err)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("auth.jwks %s: %w", path, err)
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("auth.jwks %s: no keys", path)
	}
	for i, k := range set.Keys {
		pk, err := k.publicKey()
		if err != nil {
			return fmt.Errorf("auth.jwks %s: key %d (kid %q): %w", path, i, k.Kid, err)
		}
		v.add(k.Kid, pk)
	}
	return nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func (k jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA n or e")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC x or y")
		}
		pk := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if !curve.IsOnCurve(pk.X, pk.Y) {
			return nil, errors.New("EC point not on curve")
		}
		return pk, nil
	case "OKP":
		x, err := b64(k.X)
		if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}

var validMethods = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// verifiedToken is a cache entry of a token checked before.
type verifiedToken struct {
	c       *claims
	builtin bool
	exp     time.Time
}

const tokenCacheSize = 4096

// verify is verifyToken with a cache of tokens verified before (a client
// sends the same token on every request until it expires; an ES256 or
// RS256 verification costs a few hundred microseconds).
func (a *Authenticator) verify(raw string) (*claims, bool, error) {
	key := sha256.Sum256([]byte(raw))
	now := time.Now()
	a.tokenMu.Lock()
	v, ok := a.tokens[key]
	a.tokenMu.Unlock()
	if ok && now.Before(v.exp) {
		return v.c, v.builtin, nil
	}
	c, builtin, err := a.verifyToken(raw)
	if err != nil || c.ExpiresAt == nil {
		return c, builtin, err
	}
	a.tokenMu.Lock()
	if len(a.tokens) >= tokenCacheSize {
		clear(a.tokens)
	}
	a.tokens[key] = verifiedToken{c: c, builtin: builtin, exp: c.ExpiresAt.Time}
	a.tokenMu.Unlock()
	return c, builtin, nil
}

// verifyToken parses and checks a token: signature by the built-in key or
// a trusted one, audience, expiry, issuer. It reports whether the
// built-in issuer signed it.
func (a *Authenticator) verifyToken(raw string) (*claims, bool, error) {
	var c claims
	builtin := false
	parser := jwt.NewParser(jwt.WithValidMethods(validMethods), jwt.WithAudience(a.cfg.Service),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	_, err := parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if a.signer != nil && kid == a.signer.kid && c.Issuer == a.cfg.Issuer {
			builtin = true
			return a.signer.key.Public(), nil
		}
		if a.cfg.TrustedIssuer != "" && c.Issuer != a.cfg.TrustedIssuer {
			return nil, fmt.Errorf("issuer %q is not trusted", c.Issuer)
		}
		if k, ok := a.verifier.keys[kid]; ok {
			return k, nil
		}
		if len(a.verifier.anon) == 0 {
			return nil, errors.New("no trusted key")
		}
		set := jwt.VerificationKeySet{}
		for _, k := range a.verifier.anon {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	})
	if err != nil {
		return nil, false, err
	}
	return &c, builtin, nil
}
