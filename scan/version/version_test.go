package version

import (
	"errors"
	"testing"
)

// checkSorted checks that every pair of a strictly increasing list
// compares as its positions do, both ways.
func checkSorted(t *testing.T, eco string, list []string) {
	t.Helper()
	for i := range list {
		for j := range list {
			got, err := Compare(eco, list[i], list[j])
			if err != nil {
				t.Fatalf("%s: Compare(%q, %q): %v", eco, list[i], list[j], err)
			}
			if want := sign(i - j); got != want {
				t.Errorf("%s: Compare(%q, %q) = %d, want %d", eco, list[i], list[j], got, want)
			}
		}
	}
}

func checkEqual(t *testing.T, eco string, pairs [][2]string) {
	t.Helper()
	for _, p := range pairs {
		if c, err := Compare(eco, p[0], p[1]); err != nil || c != 0 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want equal", eco, p[0], p[1], c, err)
		}
	}
}

func checkInvalid(t *testing.T, eco string, bad []string) {
	t.Helper()
	for _, v := range bad {
		if _, err := Compare(eco, v, v); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %q: got %v, want ErrInvalid", eco, v, err)
		}
	}
}

func TestDpkg(t *testing.T) {
	checkSorted(t, "Debian:12", []string{
		"0.9", "1.0~~", "1.0~~a", "1.0~", "1.0~rc1", "1.0", "1.0-0.1", "1.0-1", "1.0-1+b1", "1.0-1+deb12u1",
		"1.0-1+deb12u2", "1.0-1+deb12u10", "1.0-1.1", "1.0-2", "1.0a", "1.0a-1", "1.0+dfsg-1", "1.0.1", "1.2.1-2.2+wheezy2",
		"1.2.1-2.2+wheezy3", "1.10", "99999999999999999999999999", "1:0.1", "1:0.1-1", "2:0",
	})
	checkEqual(t, "Debian", [][2]string{{"1.0", "1.0-0"}, {"1.02", "1.2"}, {"0:1.0", "1.0"}, {"1.0-00", "1.0-0"}})
	checkInvalid(t, "Debian", []string{"", "a1.0", "1.0-", "x:1.0", "1.0 1", "1.0-1_2"})
}

func TestAPK(t *testing.T) {
	checkSorted(t, "Alpine:v3.20", []string{
		"0.9", "1.0_alpha", "1.0_alpha1", "1.0_alpha2", "1.0_beta", "1.0_pre1", "1.0_rc1", "1.0_rc2", "1.0",
		"1.0-r1", "1.0-r2", "1.0-r10", "1.0_cvs", "1.0_svn", "1.0_git20230101", "1.0_git20231231", "1.0_hg", "1.0_p1", "1.0_p1-r1",
		"1.0a", "1.0b", "1.0.1", "1.1", "1.2.3", "1.10", "3.0.9-r0", "3.0.10-r0", "20231231",
		"20231231123456789",
	})
	checkEqual(t, "Alpine", [][2]string{{"1.0", "1.0"}, {"1.0-r0", "1.0-r0"}})
	// apk's own quirks, as apk-tools orders them: a component with
	// leading zeros is smaller the more zeros it has, and a suffix may
	// follow a suffix.
	for _, p := range [][2]string{
		{"1.00", "1.0"}, {"1.0.1", "1.01"}, {"0.01", "0.06"}, {"1.02", "1.03-r1"}, {"1.06-r6", "006"},
		{"021109-r3", "20060512"}, {"0.1.0_alpha_pre2", "0.1.0_alpha"}, {"2.5.1-r8", "2.5.1a-r1"},
		{"0.20070118", "0.20070207_rc1"}, {"1.8.5", "1.8.5_p2"}, {"0.9.28", "0.9.28.1"},
	} {
		if c, err := APK(p[0], p[1]); err != nil || c != -1 {
			t.Errorf("APK(%q, %q) = %d, %v; want -1", p[0], p[1], c, err)
		}
	}
	checkInvalid(t, "Alpine", []string{"", "1.0-x", "1.0_foo", "23_foo", "1.0bc", "1.123456789012345678"})
}

// apk-tools 3 (Alpine 3.23 on) differs from apk-tools 2 on a few inputs.
func TestAPK3(t *testing.T) {
	checkSorted(t, "Alpine:v3.23", []string{
		"0.9", "1.0_alpha", "1.0_alpha1", "1.0_beta", "1.0_pre1", "1.0_rc1", "1.0", "1.0-r1", "1.0-r10", "1.0~1234", "1.0~2345", "1.0~2345-r0",
		"1.0_cvs", "1.0_git20230101", "1.0_p1", "1.0a", "1.0b", "1.0.1", "1.1", "1.10",
	})
	for _, p := range [][3]string{
		// A leading zero makes a component compare as a string.
		{"1.0", "1.00", "Alpine:v3.23"},
		{"1.00", "1.0", "Alpine:v3.20"},
	} {
		if c, err := Compare(p[2], p[0], p[1]); err != nil || c != -1 {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want -1", p[2], p[0], p[1], c, err)
		}
	}
	// Valid for apk-tools 2, not 3: digits after a letter, "-r" alone.
	for _, v := range []string{"1.0a1", "1.0-r", "0.1_"} {
		if _, err := Compare("Alpine:edge", v, "1"); !errors.Is(err, ErrInvalid) {
			t.Errorf("apk 3: %q: got %v, want ErrInvalid", v, err)
		}
	}
}

func TestPEP440(t *testing.T) {
	// PEP 440's own example of a sorted list ("Summary of permitted
	// suffixes and relative ordering"), and more.
	checkSorted(t, "PyPI", []string{
		"0.9", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2",
		"1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+5",
		"1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1", "2015.04.28", "2023.7.22", "2023.07.23", "1!0.1",
	})
	checkEqual(t, "PyPI", [][2]string{
		{"1.0", "1.0.0"}, {"1.0", "v1.0"}, {"1.0RC1", "1.0rc1"}, {"1.0c1", "1.0rc1"}, {"1.0-preview.2", "1.0rc2"},
		{"1.0alpha", "1.0a0"}, {"1.0-1", "1.0.post1"}, {"1.0.rev1", "1.0.post1"}, {"1.0.post", "1.0.post0"},
		{"1.0-dev", "1.0.dev0"}, {"2015.04.28", "2015.4.28"}, {"0!1.0", "1.0"}, {" 1.0 ", "1.0"},
		{"1.0+ubuntu-1", "1.0+ubuntu.1"}, {"1.0+UBUNTU.1", "1.0+ubuntu_1"},
	})
	checkInvalid(t, "PyPI", []string{"", "1.0.x", "french toast", "1.0+", "1.0+a..b", "1.0-rc.1.2"})
}

func TestSemver(t *testing.T) {
	// Semantic Versioning 2.0's own precedence example, and npm's express
	// pre-releases from the advisory test data.
	checkSorted(t, "npm", []string{
		"0.0.1", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "4.19.2", "5.0.0-alpha.1", "5.0.0-alpha.8", "5.0.0-beta.1", "5.0.0-beta.3", "5.0.0",
	})
	checkEqual(t, "npm", [][2]string{{"1.0.0+build.1", "1.0.0"}, {"1.0.0+a", "1.0.0+b"}})
	checkInvalid(t, "npm", []string{"", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "x"})
}

func TestGo(t *testing.T) {
	checkSorted(t, "Go", []string{
		"0.0.0-20190101000000-abcdefabcdef", "0.0.0-20220101000000-abcdefabcdef", "0.3.0", "0.3.7", "0.3.8",
		"1.20.14", "1.21.0-0", "1.21.0-rc.2", "1.21.0", "1.21.13", "v2.0.0+incompatible",
	})
}

func TestUnsupported(t *testing.T) {
	if _, err := Compare("Maven", "1", "2"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Maven: got %v, want ErrUnsupported", err)
	}
}
