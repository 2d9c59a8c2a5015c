package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/hub"
	"github.com/masque-ai/masque/hub/hubtest"
	"github.com/masque-ai/masque/internal/builtin"
)

// TestRef: an opened model knows how to be opened again (what artifacts
// record as their base): a built-in name, a hub id as given, an absolute
// path; its model's Origin says the same.
func TestRef(t *testing.T) {
	td, _ := filepath.Abs("../testdata")
	h := hubtest.New(t)
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	files := map[string][]byte{}
	for _, n := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(td, "hf-tiny/llama", n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	h.Commit("org/tiny", "main", files)
	if _, err := hub.Run(context.Background(), hub.Config{Model: hub.Ref{Repo: "org/tiny"}, Cache: cache, Endpoint: h.URL, Token: "-"}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(td)
	for _, tc := range []struct{ open, ref string }{
		{builtin.Stories, builtin.Stories},
		{"hf-tiny/llama", filepath.Join(td, "hf-tiny/llama")},
		{"org/tiny", "org/tiny"},
		{"org/tiny@main", "org/tiny@main"},
	} {
		ck, err := Open(tc.open, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ck.Ref != tc.ref || ck.Model.Origin() != tc.ref {
			t.Errorf("Open(%s): Ref %q, Origin %q; want %q", tc.open, ck.Ref, ck.Model.Origin(), tc.ref)
		}
		ck.Close()
	}
}

func TestChooseModel(t *testing.T) {
	a := Base{Ref: "/m/a", Fingerprint: "fa", File: "x.mask"}
	b := Base{Ref: "org/b", Fingerprint: "fb", File: "lora/adapter_config.json"}
	old := Base{File: "old.mask"}
	for _, tc := range []struct {
		model     string
		bases     []Base
		want, err string
	}{
		{"given", []Base{a, b}, "given", ""},
		{"", nil, "", ""},
		{"", []Base{old}, "", ""},
		{"", []Base{old, a}, "/m/a", ""},
		{"", []Base{a, {Ref: "/elsewhere/a", Fingerprint: "fa", File: "y.mask"}}, "/m/a", ""},
		{"", []Base{a, {Ref: "/m/a", File: "stats/manifest.json"}}, "/m/a", ""},
		{"", []Base{a, b}, "", "x.mask records base /m/a but lora/adapter_config.json records base org/b"},
	} {
		ref, note, err := ChooseModel(tc.model, tc.bases...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.bases, err, tc.err)
			}
			continue
		}
		if err != nil || ref != tc.want {
			t.Errorf("%q %v: %q, %v; want %q", tc.model, tc.bases, ref, err, tc.want)
		}
		wantNote := tc.model == "" && tc.want != ""
		if wantNote != (note != "") || wantNote && note != "using base "+tc.want+" recorded in "+tc.bases[len(tc.bases)-1].File && note != "using base "+tc.want+" recorded in "+tc.bases[0].File {
			t.Errorf("%q %v: note %q", tc.model, tc.bases, note)
		}
	}
}
