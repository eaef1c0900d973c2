package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// byteSize is a flag holding a size in bytes, written as a plain number
// of bytes or with a unit: "4GiB", "4 GiB", "512MiB", "64M" (binary, as
// docker's "4g"), "2GB" (decimal).
type byteSize int64

func sizeFlag(fs *flag.FlagSet, name string, value int64, usage string) *int64 {
	p := new(int64)
	*p = value
	fs.Var((*byteSize)(p), name, usage)
	return p
}

func (b *byteSize) String() string { return formatSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseSize parses a size such as "4GiB", "1.5 GB" or "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := sizeUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 || num == "" {
		return 0, fmt.Errorf("size %q: want bytes, or a number with a unit (KiB, MiB, GiB, TiB; KB, MB, GB, TB)", s)
	}
	if v*mult > math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(v * mult), nil
}

// formatSize prints n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "CHUNKYARD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags parses args into fs, after taking defaults from CHUNKYARD_*
// environment variables. -h and --help print the usage and return
// flag.ErrHelp, which the command treats as success.
func parseFlags(fs *flag.FlagSet, args []string) error {
	setUsage(fs)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

// setUsage makes fs's usage name the environment variables too.
func setUsage(fs *flag.FlagSet) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: chunkyard %s [flags]\n\n", fs.Name())
		fmt.Fprintf(w, "Every flag can also be set with an environment variable CHUNKYARD_<FLAG>\n")
		fmt.Fprintf(w, "(upper case, dashes as underscores: --data is %s); a flag on the\n", envName("data"))
		fmt.Fprintf(w, "command line wins. Sizes take units: 4GiB, 512MiB, 2GB.\n\nflags:\n")
		fs.PrintDefaults()
	}
}

// isHelp reports whether err means the user asked for help.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
