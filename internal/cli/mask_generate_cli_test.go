package cli

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
)

// halfMask prunes a random half of the up and q projections' weights of m
// (seeded), and saves it to path.
func halfMask(t *testing.T, m *model.Model, path string) *mask.Mask {
	t.Helper()
	mk := mask.New(m)
	rng := rand.New(rand.NewPCG(1, 2))
	for l := range m.Layers {
		for _, p := range []model.Proj{model.ProjQ, model.ProjUp} {
			s := mk.Shapes[p]
			b := mask.NewBits(s[0], s[1])
			for r := 0; r < s[0]; r++ {
				for c := 0; c < s[1]; c++ {
					if rng.IntN(2) == 0 {
						b.Set(r, c, false)
					}
				}
			}
			if err := mk.Set(mask.Key{Layer: l, Proj: p}, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := mk.Save(path); err != nil {
		t.Fatal(err)
	}
	return mk
}

// greedyOver is the CLI's greedy decoding of ids over m, n tokens.
func greedyOver(t *testing.T, ck *checkpoint.Checkpoint, m *model.Model, ids []int, n int) *generate.Result {
	t.Helper()
	res, err := generate.Generate(context.Background(), m, generate.FromTokenizer(ck.Tokenizer), ids,
		generate.Options{MaxTokens: n, StopTokens: ck.StopTokens(), SkipSpecial: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestGenerateMask: generate --mask (and chat --mask) give the greedy
// output of the masked model that mask.Masked makes, over the base the mask
// records when no --model is given; with --lora too, that of the masked
// model with the adapter merged; a mask for another model is refused,
// naming the file.
func TestGenerateMask(t *testing.T) {
	dir := t.TempDir()
	ck, err := checkpoint.Open("builtin:stories260K", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	mpath := filepath.Join(dir, "half.mask.safetensors")
	mk := halfMask(t, ck.Model, mpath)
	masked, err := mask.Masked(ck.Model, mk, nil)
	if err != nil {
		t.Fatal(err)
	}
	const prompt, n = "Once upon a time", 16
	ids := ck.Tokenizer.Encode(prompt, true)
	want := greedyOver(t, ck, masked, ids, n)
	if dense := greedyOver(t, ck, ck.Model, ids, n); slices.Equal(dense.IDs, want.IDs) {
		t.Fatalf("the mask does not change the greedy output %v", want.IDs)
	}
	gen := func(extra ...string) []int {
		t.Helper()
		code, out, errs := run(t, "", append([]string{"generate", "--mask", mpath, "--prompt", prompt, "-n", "16", "--temperature", "0", "--json"}, extra...)...)
		if code != 0 {
			t.Fatalf("generate --mask %v: exit %d, %s", extra, code, errs)
		}
		var res struct{ IDs []int }
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		return res.IDs
	}
	if got := gen(); !slices.Equal(got, want.IDs) {
		t.Errorf("generate --mask without --model: %v, want the masked model's %v", got, want.IDs)
	}
	if got := gen("--model", "builtin:stories260K"); !slices.Equal(got, want.IDs) {
		t.Errorf("generate --mask --model: %v, want %v", got, want.IDs)
	}

	// chat --mask: the first reply is the masked model's.
	msgs := []chattemplate.Message{{Role: "user", Content: "Hello there."}}
	cids, err := ck.EncodeChat(msgs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply := greedyOver(t, ck, masked, cids, 8)
	code, out, errs := run(t, "Hello there.\n/exit\n", "chat", "--mask", mpath, "-n", "8", "--temperature", "0")
	if code != 0 || !strings.HasPrefix(out, "> "+reply.Text+"\n") {
		t.Errorf("chat --mask: exit %d, %q, want the reply %q (%s)", code, out, reply.Text, errs)
	}

	// With a LoRA adapter too: the adapter's correction over the masked
	// projections, as the masked copy with the adapter merged computes.
	ad, err := lora.New(ck.Model, lora.Config{Rank: 2, Alpha: 4, Targets: []model.Proj{model.ProjQ, model.ProjV}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range ad.All() {
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64()) * 0.2
		}
	}
	lo := filepath.Join(dir, "lora")
	if err := ad.Save(lo, nil); err != nil {
		t.Fatal(err)
	}
	both, err := ad.Merged(masked)
	if err != nil {
		t.Fatal(err)
	}
	wantBoth := greedyOver(t, ck, both, ids, n)
	if slices.Equal(wantBoth.IDs, want.IDs) {
		t.Fatalf("the adapter does not change the greedy output %v", want.IDs)
	}
	if got := gen("--lora", lo); !slices.Equal(got, wantBoth.IDs) {
		t.Errorf("generate --mask --lora: %v, want %v", got, wantBoth.IDs)
	}

	// A mask made for another model is refused, naming the file.
	other, err := model.Load("../../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	opath := filepath.Join(dir, "other.mask.safetensors")
	if err := mask.New(other).Save(opath); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"generate", "chat"} {
		code, _, errs := run(t, "Hi.\n", cmd, "--mask", opath, "--model", "builtin:stories260K", "--prompt", "Hi", "-n", "4")
		if cmd == "chat" {
			code, _, errs = run(t, "Hi.\n", cmd, "--mask", opath, "--model", "builtin:stories260K", "-n", "4")
		}
		if code == 0 || !strings.Contains(errs, opath) || !strings.Contains(errs, "another model") {
			t.Errorf("%s --mask for another model: exit %d, %s", cmd, code, errs)
		}
	}
}
