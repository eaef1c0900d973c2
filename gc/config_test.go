package gc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	p := c.policyFor("ci/app")
	if p == nil || p.KeepLast != 10 || p.DeleteTagsOlderThan.D() != 30*24*time.Hour || !p.keepTags.MatchString("v1.2") || p.keepTags.MatchString("v1.2-rc") {
		t.Fatalf("policy %+v", p)
	}
	if c.policyFor("prod/app") != nil || c.policyFor("xci/app") != nil {
		t.Fatal("patterns must be anchored")
	}
	// The admin API's JSON round-trips.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2 := Default()
	if err := json.Unmarshal(b, &c2); err != nil || c2.Check() != nil || c2.Policies[0].KeepPulledWithin != c.Policies[0].KeepPulledWithin {
		t.Fatalf("json: %v %s", err, b)
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{
		`grace = "1h"`,               // unknown key
		`repack_below = 1.5`,         // out of range
		"[[policy]]\nrepos = \"(\"",  // bad pattern
		"[[policy]]\nkeep_last = -1", // negative
		`interval = "soon"`,          // bad duration
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "gc config") && !strings.Contains(err.Error(), "duration") {
			t.Errorf("%q: unclear error %v", bad, err)
		}
	}
}
