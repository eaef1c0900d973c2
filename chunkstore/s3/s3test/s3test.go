// Package s3test runs a real S3 server for tests: versitygw with its posix
// backend in a temporary directory, on a free 127.0.0.1 port, with one
// bucket. Tests that need it call Start; without versitygw they are skipped
// (or fail, when CHUNKYARD_REQUIRE_S3=1).
//
// versitygw is looked up in $CHUNKYARD_VERSITYGW, then on PATH, then in
// $CHUNKYARD_TOOLS/bin and the module's .cache/tools/bin, where
// `scripts/install-tools versitygw` puts it.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// Server is a running versitygw. Its fields are the settings clients need;
// path-style addressing is required (Endpoint/Bucket/KEY).
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // posix backend root: object KEY is the file Dir/Bucket/KEY

	t    testing.TB
	bin  string
	addr string
	out  *syncBuffer // the server's stdout and stderr

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed when cmd has exited
}

// Start starts versitygw with a fresh data directory and bucket, stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findBinary(t)
	s := &Server{
		Bucket:    "chunkyard-test",
		AccessKey: "chunkyard",
		SecretKey: "chunkyard-secret",
		Region:    "us-east-1",
		Dir:       t.TempDir(),
		t:         t,
		bin:       bin,
		out:       &syncBuffer{},
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.out.String())
		}
	})
	var err error
	for range 3 { // the free port may be taken before versitygw binds it
		s.addr, err = freeAddr()
		if err == nil {
			err = s.start()
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.Endpoint = "http://" + s.addr
	if err := s.createBucket(); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// Env returns the server's settings as AWS environment variables, for
// clients run as commands (path-style addressing still needs setting).
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"S3_BUCKET=" + s.Bucket,
	}
}

// Stop stops the server, keeping its data. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = cmd.Process.Kill()
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("s3test: restart: %v", err)
	}
}

// start runs versitygw on s.addr and waits until it answers HTTP.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, "--quiet", "--port", s.addr, "--region", s.Region,
		"--access", s.AccessKey, "--secret", s.SecretKey, "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("versitygw on %s exited early: %s\n%s", s.addr, cmd.ProcessState, s.out.String())
		default:
		}
		if resp, err := client.Get("http://" + s.addr + "/"); err == nil {
			_ = resp.Body.Close()
			return nil // any HTTP answer will do
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("versitygw on %s not answering after %v\n%s", s.addr, readyTimeout, s.out.String())
}

func (s *Server) createBucket() error {
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	return err
}

// findBinary returns the versitygw to run, or ends the test: skipped, or
// failed when CHUNKYARD_REQUIRE_S3=1.
func findBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHUNKYARD_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("CHUNKYARD_TOOLS"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if root := moduleRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, ".cache", "tools", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	const msg = "versitygw not found: run scripts/install-tools versitygw " +
		"(it builds .cache/tools/bin/versitygw), put versitygw on PATH, or set CHUNKYARD_VERSITYGW"
	if os.Getenv("CHUNKYARD_REQUIRE_S3") == "1" {
		t.Fatal(msg + " (CHUNKYARD_REQUIRE_S3=1)")
	}
	t.Skip(msg)
	return ""
}

// moduleRoot returns the nearest directory at or above the working
// directory holding a go.mod, or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// syncBuffer is a bytes.Buffer safe for the process's writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
