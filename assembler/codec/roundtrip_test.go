package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
)

// TestRoundTrip writes an input as each case's client library does, then
// checks that NewWriter writes the same bytes and that Find, within the
// case's trial bound, returns an Encoding that survives a JSON recipe.
func TestRoundTrip(t *testing.T) {
	raw := genTar(t, 2, 1100<<10) // pgzip: two blocks
	for _, c := range encCases(t, len(raw)) {
		if raceEnabled && !c.underRace() {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			blob := encode(t, c.enc, raw)
			if c.lib != nil {
				lib := libEncode(t, c.lib, raw)
				if !bytes.Equal(lib, blob) {
					t.Fatalf("NewWriter's %d bytes differ from the library's %d", len(blob), len(lib))
				}
			}
			found, ok, st := find(t, raw, blob)
			t.Logf("%d of %d candidates, %d raw bytes read: %s", st.Trials, st.Candidates, st.RawBytes, found)
			if c.unfound {
				if ok {
					t.Errorf("Find found %s", found)
				}
				return
			}
			if !ok {
				t.Fatalf("Find: no match (%+v)", st)
			}
			if c.maxTrials > 0 && st.Trials > c.maxTrials {
				t.Errorf("Find took %d trials, want at most %d", st.Trials, c.maxTrials)
			}
			js, err := json.Marshal(found)
			if err != nil {
				t.Fatal(err)
			}
			var recipe Encoding
			if err := json.Unmarshal(js, &recipe); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(recipe, found) {
				t.Errorf("recipe %s does not survive JSON: %+v", js, recipe)
			}
		})
	}
}

// libEncode copies raw into a library writer as io.Copy from a file or
// pipe does: through the writer's ReadFrom if it has one (zstd), else in
// 32 KiB writes.
func libEncode(tb testing.TB, lib func(io.Writer) (io.WriteCloser, error), raw []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := lib(&out)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(raw)}); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}
