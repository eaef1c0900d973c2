package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chunkyard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issue writes a server certificate for 127.0.0.1 and localhost with
// serial into dir/cert.pem and dir/key.pem.
func (ca *testCA) issue(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written beside and renamed, as an operator's tooling (certbot) does.
	os.WriteFile(certFile+".new", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile+".new", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.Rename(keyFile+".new", keyFile)
	if err := os.Rename(certFile+".new", certFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSReloadAndHTTP2: HTTPS with a certificate from a CA made here,
// HTTP/2 negotiated, and a replaced certificate served without a restart.
func TestTLSReloadAndHTTP2(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, 100)
	s := startAuthServer(t, &tls.Config{RootCAs: ca.pool}, "--tls-cert", certFile, "--tls-key", keyFile)
	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", s.host, &tls.Config{RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("ALPN: %q, want h2", st.NegotiatedProtocol)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serial %d", got)
	}
	resp, err := s.client.Get(s.base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("GET /v2/ over TLS: %s %s", resp.Proto, resp.Status)
	}
	// A new certificate on disk is picked up (mtime looked at once a
	// second at most).
	time.Sleep(1100 * time.Millisecond)
	ca.issue(t, dir, 101)
	os.Chtimes(certFile, time.Now().Add(time.Second), time.Now().Add(time.Second))
	deadline := time.Now().Add(10 * time.Second)
	for serial() != 101 {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not served")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// SIGHUP: a new pair whose files keep the old modification time is
	// served only after the signal.
	st, err := os.Stat(certFile)
	if err != nil {
		t.Fatal(err)
	}
	ca.issue(t, dir, 102)
	os.Chtimes(certFile, st.ModTime(), st.ModTime())
	os.Chtimes(keyFile, st.ModTime(), st.ModTime())
	time.Sleep(1100 * time.Millisecond)
	if got := serial(); got != 101 {
		t.Fatalf("serial %d before SIGHUP, want 101 (the files' times did not change)", got)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for serial() != 102 {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the certificate")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
