package main

import (
	"bytes"
	"context"
	"encoding/json"

	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/gc"
)

// TestAdminAPI: the GC configuration is replaced over the admin API (bad
// ones refused), kept across a restart, and a run on demand, dry or not,
// returns its report; then `chunkyard gc --dry-run` and `chunkyard fsck`
// work on the stopped data dir.
func TestAdminAPI(t *testing.T) {
	data := t.TempDir()
	start := func() (string, func()) {
		addr, admin := freeAddr(t), freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", addr, "--data", data, "--admin-addr", admin,
				"--codec-helpers", t.TempDir()}, io.Discard, io.Discard)
		}()
		for i := 0; ; i++ {
			resp, err := http.Get("http://" + admin + "/admin/gc/config")
			if err == nil {
				resp.Body.Close()
				break
			}
			if i == 200 {
				t.Fatalf("admin API did not start: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return "http://" + admin, func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v", err)
			}
		}
	}
	do := func(method, url, body string, want int) []byte {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
		}
		return b
	}
	base, stop := start()
	do("PUT", base+"/admin/gc/config", `{"repack_below": 2}`, http.StatusBadRequest)
	do("PUT", base+"/admin/gc/config", `{"colour": "blue"}`, http.StatusBadRequest)
	do("PUT", base+"/admin/gc/config", `{"interval":"0s","grace_period":"1h","policies":[{"repos":"ci/.*","keep_last":3}]}`, http.StatusOK)
	var rep gc.Report
	if err := json.Unmarshal(do("POST", base+"/admin/gc/run?dry_run=1", "", http.StatusOK), &rep); err != nil || !rep.DryRun {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if err := json.Unmarshal(do("POST", base+"/admin/gc/run", "", http.StatusOK), &rep); err != nil || rep.DryRun {
		t.Fatalf("run: %+v %v", rep, err)
	}
	if b := do("GET", base+"/admin/gc/last", "", http.StatusOK); !bytes.Contains(b, []byte(`"dry_run": false`)) {
		t.Fatalf("last: %s", b)
	}
	var fsck gc.FsckReport
	if err := json.Unmarshal(do("POST", base+"/admin/fsck", "", http.StatusOK), &fsck); err != nil || !fsck.OK() {
		t.Fatalf("online fsck: %+v %v", fsck, err)
	}
	stop()

	base, stop = start()
	var cfg gc.Config
	if err := json.Unmarshal(do("GET", base+"/admin/gc/config", "", http.StatusOK), &cfg); err != nil ||
		len(cfg.Policies) != 1 || cfg.Policies[0].KeepLast != 3 || cfg.Interval != 0 {
		t.Fatalf("config after restart: %+v %v", cfg, err)
	}
	stop()

	var out bytes.Buffer
	if err := run(context.Background(), []string{"gc", "--data", data, "--dry-run"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reclaimable") {
		t.Fatalf("gc --dry-run: %s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"fsck", "--data", data}, &out, io.Discard); err != nil {
		t.Fatalf("fsck: %v\n%s", err, out.String())
	}
}

func TestNextGCWake(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		interval time.Duration
		packsDue time.Time
		want     time.Time
		full     bool
	}{
		{time.Hour, time.Time{}, t0.Add(time.Hour), true},
		{time.Hour, t0.Add(30 * time.Minute), t0.Add(30 * time.Minute), false},
		{time.Hour, t0.Add(2 * time.Hour), t0.Add(time.Hour), true},
		{0, time.Time{}, time.Time{}, false},
		{0, t0.Add(time.Minute), t0.Add(time.Minute), false},
	}
	for _, tt := range tests {
		got, full := nextGCWake(t0, tt.interval, tt.packsDue)
		if !got.Equal(tt.want) || full != tt.full {
			t.Errorf("nextGCWake(%v, %v) = %v, %v; want %v, %v", tt.interval, tt.packsDue, got, full, tt.want, tt.full)
		}
	}
}
