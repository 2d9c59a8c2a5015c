package roleplay

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/mask"
)

// TestSetTarget fills a run's generator and records from each kind of
// target: the dense model, a mask applied in memory, and an endpoint.
func TestSetTarget(t *testing.T) {
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	ctx := context.Background()

	var dense Config
	if err := dense.SetTarget(ctx, Target{Checkpoint: ck, MaxTokens: 8}); err != nil {
		t.Fatal(err)
	}
	if _, ok := dense.Gen.(*Local); !ok || dense.Method != "dense" || dense.Sparsity == nil || *dense.Sparsity != 0 || dense.Model != ck.Path {
		t.Errorf("dense: %T %q %v %q", dense.Gen, dense.Method, dense.Sparsity, dense.Model)
	}

	mk := mask.New(ck.Model)
	mk.Info.Method, mk.Info.Sparsity = "wanda", 0.25
	mp := filepath.Join(t.TempDir(), "m.safetensors")
	if err := mk.Save(mp); err != nil {
		t.Fatal(err)
	}
	var masked Config
	if err := masked.SetTarget(ctx, Target{Checkpoint: ck, Mask: mp, MaxTokens: 8}); err != nil {
		t.Fatal(err)
	}
	if masked.Method != "wanda" || masked.Sparsity == nil || *masked.Sparsity != 0.25 || !strings.HasSuffix(masked.Model, " + mask "+mp) {
		t.Errorf("masked: %q %v %q", masked.Method, masked.Sparsity, masked.Model)
	}
	// What the caller set is kept.
	given := 0.5
	kept := Config{Method: "persona-pruner", Sparsity: &given}
	if err := kept.SetTarget(ctx, Target{Checkpoint: ck, Mask: mp, MaxTokens: 8}); err != nil || kept.Method != "persona-pruner" || *kept.Sparsity != 0.5 {
		t.Errorf("given method and sparsity: %v %q %v", err, kept.Method, *kept.Sparsity)
	}

	var ep Config
	if err := ep.SetTarget(ctx, Target{URL: "http://127.0.0.1:1/v1", Name: "m", Temperature: 0.5, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if g, ok := ep.Gen.(*Endpoint); !ok || g.Seed == nil || *g.Seed != 3 || ep.Method != "endpoint" || ep.Model != "m @ http://127.0.0.1:1/v1" {
		t.Errorf("endpoint: %T %q %q", ep.Gen, ep.Method, ep.Model)
	}
	if err := (&Config{}).SetTarget(ctx, Target{URL: "http://x/v1", Name: "m", Mask: mp}); !errors.Is(err, ErrEndpointReference) {
		t.Errorf("a mask on an endpoint: %v", err)
	}
	if err := (&Config{}).SetTarget(ctx, Target{Checkpoint: ck, Mask: mp + ".missing"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing mask: %v", err)
	}
}

// TestEndpointKeyFromEnv: an endpoint target without a key uses
// $MASQUE_MODEL_KEY; a given key wins.
func TestEndpointKeyFromEnv(t *testing.T) {
	t.Setenv(ModelKeyEnv, "from-env")
	for key, want := range map[string]string{"": "from-env", "given": "given"} {
		var cfg Config
		if err := cfg.SetTarget(context.Background(), Target{URL: "http://127.0.0.1:1/v1", Name: "m", Key: key}); err != nil {
			t.Fatal(err)
		}
		if got := cfg.Gen.(*Endpoint).Client.APIKey; got != want {
			t.Errorf("key %q: sent %q, want %q", key, got, want)
		}
	}
}
