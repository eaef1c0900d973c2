package version

import "testing"

// Each ordering must be a total order on the versions it accepts: no
// panic, reflexive, antisymmetric; transitivity is checked on triples.
func fuzzOrdering(f *testing.F, eco string, seeds []string) {
	for _, a := range seeds {
		for _, b := range seeds {
			f.Add(a, b, seeds[0])
		}
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, err1 := Compare(eco, a, b)
		ba, err2 := Compare(eco, b, a)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Compare(%q, %q) err %v, reversed err %v", a, b, err1, err2)
		}
		if err1 != nil {
			return
		}
		if ab != -ba {
			t.Fatalf("Compare(%q, %q) = %d but reversed %d", a, b, ab, ba)
		}
		if aa, _ := Compare(eco, a, a); aa != 0 {
			t.Fatalf("Compare(%q, itself) = %d", a, aa)
		}
		bc, err := Compare(eco, b, c)
		if err != nil {
			return
		}
		ac, _ := Compare(eco, a, c)
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("%q <= %q <= %q but Compare(a, c) = %d", a, b, c, ac)
		}
	})
}

func FuzzDpkg(f *testing.F) {
	fuzzOrdering(f, "Debian", []string{"1.0", "1.0~rc1", "1:2.3-1+deb12u1", "1.0a", "0.0-0", "2.36.1-8+deb11u1"})
}

func FuzzAPK(f *testing.F) {
	fuzzOrdering(f, "Alpine", []string{"1.0", "1.0_alpha1", "1.0-r1", "1.0_p1", "1.01", "1.0a", "1.2.3_git20230101-r0"})
}

func FuzzPEP440(f *testing.F) {
	fuzzOrdering(f, "PyPI", []string{"1.0", "1.0.dev1", "1.0a1", "1.0.post1", "1!1.0+abc.5", "2015.04.28", "1.0rc1.post2.dev3"})
}

func FuzzSemver(f *testing.F) {
	fuzzOrdering(f, "npm", []string{"1.0.0", "1.0.0-alpha.1", "1.0.0-beta.11", "5.0.0-beta.3", "1.0.0+build"})
}

func FuzzAPK3(f *testing.F) {
	fuzzOrdering(f, "Alpine:v3.23", []string{"1.0", "1.0_alpha1", "1.0-r1", "1.0_p1", "1.01", "1.0a", "1.0_pre2~1234abcd-r1"})
}
