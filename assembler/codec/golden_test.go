package codec

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// goldenInput is the fixed input every golden hash is of: a 2 MiB tar,
// so that pgzip's 1 MiB blocks hand a dictionary on.
func goldenInput(tb testing.TB) []byte {
	tb.Helper()
	raw := genTar(tb, 1, 2<<20)
	if got, want := sum(raw), goldenInputSum; got != want {
		tb.Fatalf("test input changed (archive/tar?): sha256 %s, want %s", got, want)
	}
	return raw
}

const goldenInputSum = "26d6d55904cbf1bcb2a97cd78d87e6063dc3039f545584d36c55bce24bbf88bd"

// goldenSums pins the sha256 of each case's output for goldenInput. A
// change means the toolchain or a klauspost module changed its output,
// and recipes found before no longer re-encode: do not just update these;
// a new output class needs a new encoder class (see the package doc).
var goldenSums = map[string]string{
	"buildah/pgzip-default":       "80d97aff3a85c31a44335968f2a9e863a9ae336b271f55555f028a5d468da6ea",
	"containerd/zstd-default":     "4ce7d56ac3ea5adb96587cffdd6d9e0eea03026e44370967c5f50935213eda9a",
	"docker/stdlib-default":       "14437e1a39f9d2d27bf7d33e83e77c13d73e67c18987dc1006d07f3b223a2295",
	"ggcr/zstd-level1":            "6724d0b9d7cf8387af49deda9a7b086d97c986aba73216ab639f7256c3e38ef4",
	"go-stdlib/-2":                "11a728398c7f4391dc67709f1d1f341f1cdd05bc146d36a22c20e3adcc026ff7",
	"go-stdlib/0":                 "fa9bde9071f85b5cfe247bfcfa174e1037ba65501cb5186bc9ea8cb0ac35f1a6",
	"go-stdlib/1":                 "d733e71c7c565cbc07f303c13c64e64d9b586b1646eb2e306d0250c3a4d0cd95",
	"go-stdlib/2":                 "e062dc61a45550796f4f499bec2615efdd87b4620edddecb82d535db06a46fbf",
	"go-stdlib/3":                 "3af90c3e03b71cdb91adaa0c5b889016f29a63228d0c76e5c65f884157322b91",
	"go-stdlib/4":                 "aab724a2b347e57531c4914dfec5db17591b0e504cb616b24a5699cbf1262bf8",
	"go-stdlib/5":                 "7f5f1a028093ecfe0102048807730edec3dc2c6a8dc56a3bd45689aaec7ee79e",
	"go-stdlib/6":                 "14437e1a39f9d2d27bf7d33e83e77c13d73e67c18987dc1006d07f3b223a2295",
	"go-stdlib/6-header":          "e53952a3ea783345d5d00315ee18e32794943221d985cec06d97e64e1cbc708c",
	"go-stdlib/7":                 "19ea48ecca7db3c52b5e3399f1403744475a60bcf12fe64ab5ceeca636df52b6",
	"go-stdlib/8":                 "8491baa0217e4175170677a25615d2fa9620754b4cce1cdb868ea4351eea825d",
	"go-stdlib/9":                 "90e4e521ee23233258b1f826cf297bfe56f370f84d16ef335e95a382bf97b3b4",
	"klauspost-gzip/-2":           "0727a8c0bb02d968d8309bafd9e26fef45ed611c631361b80816a9216b2a4220",
	"klauspost-gzip/0":            "29a226e51eaa5af96cfca7af5ff4fb23610f704f7fd5dd35fb76b3df5e67a7fe",
	"klauspost-gzip/1":            "d0e03834f5c9b63dea6fb4e7a622e1c7fe69aee05c04a839b2e5d51af9ac7cd9",
	"klauspost-gzip/2":            "0d7a6efe2a3943dd7e9aefa3633c3b460d413ca268cd4191d1ac16663630ca31",
	"klauspost-gzip/3":            "3d2f0f0ca2e139f515ffe4e40c664ce96b2858ffbf0d6b06fefa84a5d70073c0",
	"klauspost-gzip/4":            "eabcd1f1f3fe74ac443ebdf6bcbd6eff3a78790d9af1fd9bbc30338f4d92fa00",
	"klauspost-gzip/5":            "22c93c833418191d39c646f557eea9351a8ddff64519e1d38b2207b062da4378",
	"klauspost-gzip/6":            "9d7ddb2364eba91ad51c26e0ff2a68252ab43e01120c396ba11bdf4b1dc0f211",
	"klauspost-gzip/6-hcrc":       "44c81c9f082706f465848df6dbb1884b25f7c96a7b4f9dfc0dc9960ead8f969f",
	"klauspost-gzip/7":            "35851527d3e428c39f694579bb3679fbca31a038d5f151d8e9a29837b6f9ef56",
	"klauspost-gzip/8":            "5a11d5415afe96b0a2d068f99976e98ff75a2535b7ccdf1db0e46851f0fbbb8c",
	"klauspost-gzip/9":            "d2463a63d8d247fbff14c6351b0010ac00ebfe18746091102a78308417aa9032",
	"klauspost-pgzip/-2":          "f0dd93882f8507d46fec5a462dcb45117b408e338e6ab97e20d3053820cde7d8",
	"klauspost-pgzip/0":           "973451813c7232f0a89827f7a75967b27839b402a52e509b125ce540b9d5f8c4",
	"klauspost-pgzip/1":           "338c3f51657acf5c03b91e6cf9a8501abeb50df4b2ef3db9916b0da71872c193",
	"klauspost-pgzip/2":           "47de4a972ff80b59df84160d5e979bffd07252e02c556cc6ffbbd9e4d8c42821",
	"klauspost-pgzip/3":           "1f9d1be03f51fd23c2acaaa218f4f8621d2868ecb7ebe46ff2c8e83a271d35d0",
	"klauspost-pgzip/4":           "40dca226ed35f6b14b857d07561d2818e67470f0eb43508b25d1c8972f9455c4",
	"klauspost-pgzip/5":           "80d97aff3a85c31a44335968f2a9e863a9ae336b271f55555f028a5d468da6ea",
	"klauspost-pgzip/5-block256k": "4e7578ccc7acde86d5330e5cb38a89a49e9744010f0e69dd6938a68778f18364",
	"klauspost-pgzip/6":           "a11a2b01c67a62c526b3038205fd97cb98ff05635d2742234a6d382b20c68ad3",
	"klauspost-pgzip/7":           "a7418ba35f37e337864e347868476b5efafd3cc9a62cbaac6cd6cd6eb9c34d77",
	"klauspost-pgzip/8":           "c2bb975a4eec7d926d09e819b2c6a7069ebf4507df6394b24e4ded5bb1381b6b",
	"klauspost-pgzip/9":           "ef73776bc3e25654af962cf36e797ffdb623caf7ec48f44b368e61e4b01f5a2f",
	"klauspost-zstd/1":            "6724d0b9d7cf8387af49deda9a7b086d97c986aba73216ab639f7256c3e38ef4",
	"klauspost-zstd/2":            "4ce7d56ac3ea5adb96587cffdd6d9e0eea03026e44370967c5f50935213eda9a",
	"klauspost-zstd/2-nocrc":      "71654dbbeae6935718cd7f718fc3bac19b1bdbb3c013730d5a83ff3a7d92804e",
	"klauspost-zstd/2-sized":      "462485aa81f07bf18d43160cf8e42c2e9e37265d1596702ea8e95f37e1871b63",
	"klauspost-zstd/2-window1m":   "0587bc2adaf51b0d79b6de5848f21f0640766194c3323d2460a0c2110e62e406",
	"klauspost-zstd/3":            "2e712705a37c09e3943d2afcd98c639105f405d070f0d2b8697453dbbd737079",
	"klauspost-zstd/4":            "1422faeeccb8c6e32e64441e54997c086f97c4070a7ef5a555bacee3325205d8",
}

// TestGolden encodes goldenInput with every case, in writes of odd sizes
// (the output must not depend on them), and checks the pinned hash.
func TestGolden(t *testing.T) {
	raw := goldenInput(t)
	cases := encCases(t, len(raw))
	got := make([]string, len(cases))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := sum(encode(t, c.enc, raw, 1, 7, 4096, 100003, 1<<20+5))
			got[i] = fmt.Sprintf("%q: %q,", c.name, s)
			if want := goldenSums[c.name]; s != want {
				t.Errorf("output sha256 %s, golden %s", s, want)
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			sort.Strings(got)
			t.Logf("this build's sums:\n%s", strings.Join(got, "\n"))
		}
	})
}
