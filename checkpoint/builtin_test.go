package checkpoint

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// TestDefaultIsVoices: no path, "builtin" and "builtin:voices" all open the
// voices model from its unpacked folder; $MASQUE_MODEL replaces the default.
func TestDefaultIsVoices(t *testing.T) {
	t.Setenv("MASQUE_CACHE", t.TempDir())
	t.Setenv(DefaultModelEnv, "")
	for _, name := range []string{"", "builtin", builtin.Voices} {
		ck, err := Open(name, Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		if ck.Path != builtin.Voices || !ck.HasTemplate || ck.Tokenizer == nil || ck.Model.Config.Vocab != 8192 {
			t.Fatalf("Open(%q): path %s, template %v, vocab %d", name, ck.Path, ck.HasTemplate, ck.Model.Config.Vocab)
		}
		if _, err := os.Stat(filepath.Join(ck.Dir, "model.safetensors")); err != nil {
			t.Fatalf("Open(%q): Dir %q is not the unpacked folder: %v", name, ck.Dir, err)
		}
		// The chat template is ChatML with <|im_end|> as a stop token.
		s, err := ck.RenderChat([]chattemplate.Message{{Role: "system", Content: "You are the Devil's Dictionary."}, {Role: "user", Content: "Define peace."}}, true, nil)
		if err != nil || !strings.Contains(s, "<|im_start|>system\nYou are the Devil's Dictionary.<|im_end|>") || !strings.HasSuffix(s, "<|im_start|>assistant\n") {
			t.Fatalf("chat template: %q %v", s, err)
		}
		imEnd := ck.Tokenizer.Encode("<|im_end|>", false)
		stops := ck.StopTokens()
		if len(imEnd) != 1 || !containsInt(stops, imEnd[0]) {
			t.Fatalf("stop tokens %v do not include <|im_end|> %v", stops, imEnd)
		}
		ck.Close()
	}
	t.Setenv(DefaultModelEnv, builtin.Stories)
	ck, err := Open("", Options{})
	if err != nil || ck.Path != builtin.Stories {
		t.Fatalf("with %s=%s: %v %+v", DefaultModelEnv, builtin.Stories, err, ck)
	}
	ck.Close()
}

// TestVoicesExports: builtin:voices converts to GGUF with its own tokenizer
// (a byte-level BPE, not the llama2.c one) and the GGUF file gives the same
// next-token choice.
func TestVoicesExports(t *testing.T) {
	t.Setenv("MASQUE_CACHE", t.TempDir())
	ck, err := Open(builtin.Voices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	p := filepath.Join(t.TempDir(), "voices.gguf")
	if err := ck.SaveGGUF(p, quant.F32); err != nil {
		t.Fatal(err)
	}
	g, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	text := "And the LORD spake unto Moses, saying,"
	a, b := ck.Tokenizer.Encode(text, false), g.Tokenizer.Encode(text, false)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("GGUF tokenizer differs: %v vs %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("GGUF tokenizer differs at %d: %v vs %v", i, a, b)
		}
	}
	if !g.HasTemplate {
		t.Fatal("GGUF export lost the chat template")
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestVoicesMatchesPyTorch: builtin:voices's logits agree with the
// independent PyTorch reference (float64) on a plain-text and a chat sequence.
// The golden file, testdata/voices-golden.json, is written by
// scripts/voices_golden.py (its provenance is there); it holds, per position,
// the log-sum-exp, the five largest logits and 32 fixed columns.
func TestVoicesMatchesPyTorch(t *testing.T) {
	t.Setenv("MASQUE_CACHE", t.TempDir())
	raw, err := os.ReadFile("testdata/voices-golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Model     string `json:"model"`
		FixedIDs  []int  `json:"fixed_ids"`
		Sequences []struct {
			Text      string `json:"text"`
			IDs       []int  `json:"ids"`
			Positions []struct {
				LSE    float64   `json:"lse"`
				TopIDs []int     `json:"top_ids"`
				Top    []float64 `json:"top"`
				Fixed  []float64 `json:"fixed"`
			} `json:"positions"`
		} `json:"sequences"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(builtin.Voices, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m := ck.Model
	if len(g.Sequences) < 2 {
		t.Fatalf("golden has %d sequences", len(g.Sequences))
	}
	// Two ways to run the BF16 weights: with float32 activations
	// (kernels.ExactBF16) masque must agree with float64 PyTorch to float32
	// accuracy; with the default bf16-rounded activations (relative error
	// 2⁻⁹ per activation) the logits, of magnitude up to ~20, move by up to
	// ~0.04 on these sequences, and the greedy choice must not change.
	modes := []struct {
		name     string
		k        kernels.Kernels
		abs, rel float64
	}{
		{"float32 activations", kernels.ExactBF16(kernels.Default()), 1e-4, 1e-5},
		{"bf16 activations (default)", kernels.Default(), 0.08, 0.01},
	}
	for _, mode := range modes {
		m.K = mode.k
		for si, s := range g.Sequences {
			if ids := ck.Tokenizer.Encode(s.Text, false); !slices.Equal(ids, s.IDs) {
				t.Fatalf("sequence %d: masque encodes %q as %v, the golden was made from %v", si, s.Text, ids, s.IDs)
			}
			logits, err := m.Forward(m.NewCache(len(s.IDs)), s.IDs, true)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config.Vocab
			if len(logits) != len(s.IDs)*v || len(s.Positions) != len(s.IDs) {
				t.Fatalf("sequence %d: %d logits for %d positions", si, len(logits), len(s.IDs))
			}
			worst := 0.0
			for p, want := range s.Positions {
				row := logits[p*v : (p+1)*v]
				check := func(what string, got float32, want float64) {
					d := math.Abs(float64(got) - want)
					worst = math.Max(worst, d)
					if d > mode.abs+mode.rel*math.Abs(want) {
						t.Errorf("%s: sequence %d position %d %s: masque %.6f, PyTorch %.6f", mode.name, si, p, what, got, want)
					}
				}
				check("log-sum-exp", logSumExp(row), want.LSE)
				for i, id := range want.TopIDs {
					check(fmt.Sprintf("logit of top id %d", id), row[id], want.Top[i])
				}
				for i, id := range g.FixedIDs {
					check(fmt.Sprintf("logit of id %d", id), row[id], want.Fixed[i])
				}
				if got := argmax(row); got != want.TopIDs[0] && float64(row[want.TopIDs[0]]) < float64(row[got])-0.02 {
					t.Errorf("%s: sequence %d position %d: masque's next token %d, PyTorch's %d", mode.name, si, p, got, want.TopIDs[0])
				}
			}
			t.Logf("%s: sequence %d (%d tokens): largest difference %.4g", mode.name, si, len(s.IDs), worst)
		}
	}
}

func logSumExp(xs []float32) float32 {
	mx := xs[0]
	for _, x := range xs {
		mx = max(mx, x)
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(float64(x - mx))
	}
	return mx + float32(math.Log(s))
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}
