package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool returns the path of a client binary. Under the test command
// (CHUNKYARD_TOOLS set) a missing one fails the test; elsewhere it skips.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CHUNKYARD_TOOLS") != "" {
		t.Fatalf("%s not on PATH (scripts/install-tools installs it)", name)
	}
	t.Skipf("%s not on PATH; run under scripts/test or put .cache/tools/bin on PATH", name)
	return ""
}

// gzLayer is a gzipped tar of one file of random bytes.
func gzLayer(t testing.TB, seed uint64, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "data.bin", Mode: 0o644, Size: int64(size)})
	tw.Write(data)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestClientsLoginTLS runs every client's login and a push and pull over
// TLS (a CA made here), once with basic auth only and once with the
// bearer-token flow. skopeo runs when installed (required when
// CHUNKYARD_SKOPEO is set); docker when a daemon answers.
func TestClientsLoginTLS(t *testing.T) {
	crane := needTool(t, "crane")
	regctl := needTool(t, "regctl")
	oras := needTool(t, "oras")
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CHUNKYARD_SKOPEO") != "" {
			t.Fatal("CHUNKYARD_SKOPEO is set but skopeo is not on PATH")
		}
		t.Log("skopeo not installed: its login is not tested (CHUNKYARD_SKOPEO=1 scripts/test installs it)")
		skopeo = ""
	}
	docker := ""
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "info").Run() == nil {
		docker = p
	}

	for _, mode := range []string{"basic", "bearer"} {
		t.Run(mode, func(t *testing.T) {
			ca := newTestCA(t)
			dir := t.TempDir()
			certFile, keyFile := ca.issue(t, dir, 1)
			caFile := filepath.Join(dir, "ca.pem")
			os.WriteFile(caFile, ca.pem, 0o644)
			certsD := filepath.Join(dir, "certs.d")
			os.MkdirAll(certsD, 0o755)
			os.WriteFile(filepath.Join(certsD, "ca.crt"), ca.pem, 0o644)
			htp := filepath.Join(dir, "htpasswd")
			writeHtpasswd(t, htp, "ci=ci-pass-"+mode, "reader=reader-pass")
			cfg := filepath.Join(dir, "chunkyard.toml")
			token := "true"
			if mode == "basic" {
				token = "false"
			}
			os.WriteFile(cfg, []byte(fmt.Sprintf(`
[auth]
htpasswd = %q
token = %s

[[auth.access]]
repos = ["**"]
users = ["ci"]
actions = ["*"]

[[auth.access]]
repos = ["**"]
users = ["reader"]
actions = ["pull"]

[[auth.access]]
repos = ["public/**"]
users = ["anonymous"]
actions = ["pull"]
`, htp, token)), 0o600)
			s := startAuthServer(t, &tls.Config{RootCAs: ca.pool}, "--config", cfg, "--tls-cert", certFile, "--tls-key", keyFile)
			_, h, _ := s.req(t, "GET", "/v2/", "", nil)
			wantChallenge := map[string]string{"basic": "Basic ", "bearer": "Bearer realm=\"https://" + s.host + "/token\""}[mode]
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), wantChallenge) {
				t.Fatalf("challenge %q, want %q...", h.Get("WWW-Authenticate"), wantChallenge)
			}
			host := s.host
			pass := "ci-pass-" + mode
			home := filepath.Join(dir, "home")
			os.MkdirAll(home, 0o700)
			env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
				"SSL_CERT_FILE="+caFile, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
				"XDG_RUNTIME_DIR="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
			run := func(stdin string, bin string, args ...string) string {
				t.Helper()
				cmd := exec.Command(bin, args...)
				cmd.Env, cmd.Dir = env, dir
				cmd.Stdin = strings.NewReader(stdin)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				shown := stdout.Bytes()
				if bytes.IndexByte(shown, 0) >= 0 || len(shown) > 2000 {
					shown = []byte(fmt.Sprintf("(%d bytes)", len(shown)))
				}
				t.Logf("+ %s %s\n%s%s", filepath.Base(bin), strings.Join(args, " "), bytes.TrimSpace(stderr.Bytes()), bytes.TrimSpace(shown))
				if err != nil {
					t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
				}
				if bytes.IndexByte(stdout.Bytes(), 0) >= 0 {
					return stdout.String()
				}
				return strings.TrimSpace(stdout.String())
			}
			fails := func(bin string, args ...string) {
				t.Helper()
				cmd := exec.Command(bin, args...)
				cmd.Env, cmd.Dir = env, dir
				if out, err := cmd.CombinedOutput(); err == nil {
					t.Fatalf("%s %s succeeded, want a failure:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
				}
			}
			layer := gzLayer(t, uint64(len(mode)), 300<<10)
			os.WriteFile(filepath.Join(dir, "layer.tar.gz"), layer, 0o644)
			ld := digestOf(layer)

			// crane: no credentials, no push; then login, push, pull.
			fails(crane, "append", "-f", "layer.tar.gz", "-t", host+"/crane/app:v1")
			run("", crane, "auth", "login", host, "-u", "ci", "-p", pass)
			run("", crane, "append", "-f", "layer.tar.gz", "-t", host+"/crane/app:v1")
			d1 := run("", crane, "digest", host+"/crane/app:v1")
			blob := run("", crane, "blob", host+"/crane/app@"+ld)
			if blob != string(layer) {
				t.Fatalf("crane blob: %d bytes back, pushed %d", len(blob), len(layer))
			}
			run("", crane, "auth", "logout", host)

			// regctl: login, copy (mount across repositories), pull a blob.
			run(pass+"\n", regctl, "registry", "login", host, "-u", "ci", "--pass-stdin")
			run("", regctl, "image", "copy", host+"/crane/app:v1", host+"/regctl/app:v1")
			if d := run("", regctl, "image", "digest", host+"/regctl/app:v1"); d != d1 {
				t.Fatalf("regctl copy: digest %s, want %s", d, d1)
			}
			if blob := run("", regctl, "blob", "get", host+"/regctl/app", ld); blob != string(layer) {
				t.Fatalf("regctl blob get: %d bytes back, pushed %d", len(blob), len(layer))
			}
			run("", regctl, "registry", "logout", host)

			// oras: login, push an artifact, pull it back.
			os.WriteFile(filepath.Join(dir, "note.txt"), []byte("pushed by oras over "+mode), 0o644)
			run(pass+"\n", oras, "login", host, "-u", "ci", "--password-stdin")
			run("", oras, "push", host+"/oras/note:v1", "note.txt")
			os.MkdirAll(filepath.Join(dir, "pulled"), 0o755)
			run("", oras, "pull", host+"/oras/note:v1", "-o", "pulled")
			if b, _ := os.ReadFile(filepath.Join(dir, "pulled", "note.txt")); string(b) != "pushed by oras over "+mode {
				t.Fatalf("oras pull: %q", b)
			}
			run("", oras, "logout", host)

			// Anonymous (logged out): public/** pulls, the rest does not.
			run("", crane, "auth", "login", host, "-u", "ci", "-p", pass)
			run("", crane, "copy", host+"/crane/app:v1", host+"/public/app:v1")
			run("", crane, "auth", "logout", host)
			if d := run("", crane, "digest", host+"/public/app:v1"); d != d1 {
				t.Fatalf("anonymous pull of public/app: %s", d)
			}
			if d := run("", regctl, "image", "digest", host+"/public/app:v1"); d != d1 {
				t.Fatalf("anonymous regctl pull of public/app: %s", d)
			}
			fails(crane, "digest", host+"/crane/app:v1")

			// A reader may pull, not push.
			run("", crane, "auth", "login", host, "-u", "reader", "-p", "reader-pass")
			if d := run("", crane, "digest", host+"/regctl/app:v1"); d != d1 {
				t.Fatalf("reader pull: %s", d)
			}
			fails(crane, "copy", host+"/crane/app:v1", host+"/reader/app:v1")
			run("", crane, "auth", "logout", host)

			if skopeo != "" {
				run(pass+"\n", skopeo, "login", "--cert-dir", certsD, "-u", "ci", "--password-stdin", host)
				run("", skopeo, "copy", "--src-cert-dir", certsD, "--dest-cert-dir", certsD,
					"docker://"+host+"/crane/app:v1", "docker://"+host+"/skopeo/app:v1")
				if d := run("", skopeo, "inspect", "--cert-dir", certsD, "--format", "{{.Digest}}", "docker://"+host+"/skopeo/app:v1"); d != d1 {
					t.Fatalf("skopeo copy: digest %s, want %s", d, d1)
				}
				run("", skopeo, "logout", host)
			}
			if docker != "" {
				run(pass+"\n", docker, "login", host, "-u", "ci", "--password-stdin")
				run("", docker, "logout", host)
			} else {
				t.Log("no docker daemon answers `docker info`: docker login not tested")
			}
			// The clients took the flow the challenge named.
			tokens := strings.Count(s.logs.String(), "path=/token ")
			if (mode == "bearer") != (tokens > 0) {
				t.Errorf("%s mode: %d requests to /token", mode, tokens)
			}
		})
	}
}
