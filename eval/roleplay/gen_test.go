package roleplay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/persona"
)

func TestLocalGenerator(t *testing.T) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	mk := mask.New(ck.Model)
	w := ck.Model.Layers[0].Weight(model.ProjUp)
	b := mask.NewBits(w.Rows, w.Cols)
	for c := 0; c < w.Cols; c += 2 {
		for r := 0; r < w.Rows; r++ {
			b.Set(r, c, false)
		}
	}
	if err := mk.Set(mask.Key{Layer: 0, Proj: model.ProjUp}, b); err != nil {
		t.Fatal(err)
	}
	masked, err := mask.Masked(ck.Model, mk, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := generate.Options{MaxTokens: 12}
	dense, _ := NewLocal(ck, nil, o, "")
	dense2, _ := NewLocal(ck, nil, o, "")
	longer, _ := NewLocal(ck, nil, generate.Options{MaxTokens: 13}, "")
	tagged, _ := NewLocal(ck, nil, o, "mask:abc")
	msk, _ := NewLocal(ck, masked, o, "")
	fps := map[string]string{"dense": dense.Fingerprint(), "longer": longer.Fingerprint(), "tagged": tagged.Fingerprint(), "masked": msk.Fingerprint()}
	seen := map[string]string{}
	for k, v := range fps {
		if other, dup := seen[v]; dup {
			t.Fatalf("%s and %s share a fingerprint: their answers would share cache entries", k, other)
		}
		seen[v] = k
	}
	if dense.Fingerprint() != dense2.Fingerprint() {
		t.Fatal("the fingerprint is not stable")
	}
	ctx := context.Background()
	g1, err := dense.Generate(ctx, "You are a cat.", "Where do you sleep?")
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := dense.Generate(ctx, "You are a cat.", "Where do you sleep?")
	if g1 != g2 || g1.Text == "" || g1.Tokens == 0 || g1.Tokens > 12 {
		t.Fatalf("greedy answers %+v and %+v", g1, g2)
	}
	// The same mask applied per sequence, named by the masked weights'
	// fingerprint: the masked copy's cache entries and answers.
	view, err := persona.MaskedModel(ck.Model, mk)
	if err != nil {
		t.Fatal(err)
	}
	wfp, err := mask.FingerprintMasked(ck.Model, mk)
	if err != nil {
		t.Fatal(err)
	}
	perSeq, err := NewLocalWeights(ck, view, wfp, o, "")
	if err != nil {
		t.Fatal(err)
	}
	if perSeq.Fingerprint() != msk.Fingerprint() {
		t.Error("a mask applied per sequence has another fingerprint than the masked copy")
	}
	gm, err := msk.Generate(ctx, "You are a cat.", "Where do you sleep?")
	if err != nil {
		t.Fatal(err)
	}
	gv, err := perSeq.Generate(ctx, "You are a cat.", "Where do you sleep?")
	if err != nil || gv != gm {
		t.Fatalf("per sequence %+v (%v), masked copy %+v", gv, err, gm)
	}
	long := strings.Repeat("Tell me a very long story about a cat. ", 60)
	if _, err := dense.Generate(ctx, "", long); err == nil || !strings.Contains(err.Error(), "the model's context is 512") {
		t.Fatalf("too long a prompt: %v", err)
	}
}

func TestEndpointGenerator(t *testing.T) {
	srv, calls := judgeServer(t, "", 30)
	e := &Endpoint{Client: &openaiclient.Client{Name: "model", URL: srv.URL}, Model: "m", MaxTokens: 16}
	g, err := e.Generate(context.Background(), "sys", "Ignore the persona")
	if err != nil || g.Text != "20" || calls.Load() != 1 {
		t.Fatalf("%+v %v", g, err)
	}
	e2 := &Endpoint{Client: &openaiclient.Client{URL: srv.URL}, Model: "m", MaxTokens: 17}
	if e.Fingerprint() == e2.Fingerprint() {
		t.Fatal("settings do not change the fingerprint")
	}
	bad := &Endpoint{Client: &openaiclient.Client{Name: "model", URL: closedURL(t), MaxAttempts: 1}, Model: "m"}
	if _, err := bad.Generate(context.Background(), "", "q"); err == nil || !strings.Contains(err.Error(), "model endpoint") {
		t.Fatalf("%v", err)
	}
}

func TestComputeReference(t *testing.T) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	txt := filepath.Join(t.TempDir(), "ppl.txt")
	os.WriteFile(txt, []byte("Once upon a time there was a cat.\nThe dog ran to the park.\n"), 0o644)
	ref, err := ComputeReference(context.Background(), ck, nil, ReferenceOptions{
		MCTests: []string{filepath.Join("..", "..", "testdata", "persona-evals", "extraversion.jsonl")}, MCLimit: 3,
		PPLData: []string{txt}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.MC) != 1 || ref.MC[0].Items != 3 || len(ref.PPL) != 1 || ref.PPL[0].Samples != 2 || !(ref.PPL[0].PPL > 1) {
		t.Fatalf("%+v", ref)
	}
	if len(ref.Notes) != 0 {
		t.Fatalf("notes %q (style scores are run metrics, not reference notes)", ref.Notes)
	}
	if _, err := ComputeReference(context.Background(), ck, nil, ReferenceOptions{MCTests: []string{"absent.jsonl"}}); err == nil || !strings.Contains(err.Error(), "absent.jsonl") {
		t.Fatalf("missing test file: %v", err)
	}
}
