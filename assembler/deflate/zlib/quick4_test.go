package zlib

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
)

func TestQuickPigz(t *testing.T) {
	for _, f := range []string{"/tmp/zv/b2", "/tmp/zv/mix", "/dev/null"} {
		in, _ := os.ReadFile(f)
		for _, level := range []int{1, 3, 6, 9} {
			for _, p := range []string{"1", "2"} {
				for _, indep := range []bool{false, true} {
					args := []string{"-c", "-n", "-" + string(rune('0'+level)), "-p", p}
					if indep {
						args = append(args, "-i")
					}
					cmd := exec.Command("pigz", args...)
					cmd.Stdin = bytes.NewReader(in)
					gz, err := cmd.Output()
					if err != nil {
						t.Fatal(err)
					}
					want := gz[10 : len(gz)-8]
					var got bytes.Buffer
					err = EncodePigz(context.Background(), &got, bytes.NewReader(in), PigzOptions{Level: level, Single: p == "1", Independent: indep, Workers: 2})
					if err != nil {
						t.Fatal(err)
					}
					if d := firstDiff(got.Bytes(), want); d >= 0 {
						t.Errorf("%s level %d -p %s -i=%v: differs at %d (got %d want %d)", f, level, p, indep, d, got.Len(), len(want))
					}
				}
			}
		}
	}
}
