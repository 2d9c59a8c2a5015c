package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

var hfTiny = []string{"llama", "llama3-ropescaled", "qwen2", "qwen3", "mistral", "smollm-tied"}

type golden struct {
	InputIDs    [][]int `json:"input_ids"`
	LossTargets [][]int `json:"loss_targets"`
	Loss        float64 `json:"loss"`
}

func tinyDir(name string) string { return filepath.Join("..", "testdata", "hf-tiny", name) }

func loadGolden(t testing.TB, name string) (*golden, *safetensors.File) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tinyDir(name), "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(tinyDir(name), "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &g, f
}

func (g *golden) seqs() []Sequence {
	var out []Sequence
	for i := range g.InputIDs {
		out = append(out, Sequence{Tokens: g.InputIDs[i], Targets: g.LossTargets[i]})
	}
	return out
}

func tensorOf(t testing.TB, f *safetensors.File, name string) []float32 {
	t.Helper()
	tt, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("golden tensor %s missing", name)
	}
	v, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// maxRelDiff returns max|a−b| / max|b|.
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// TestGoldenGradients compares the loss, every parameter gradient and the
// input-embedding gradients with PyTorch's (float64) for each architecture,
// with and without activation recomputation.
func TestGoldenGradients(t *testing.T) {
	for _, name := range hfTiny {
		for _, recompute := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: "/recompute"}[recompute], func(t *testing.T) {
				g, gf := loadGolden(t, name)
				m, err := model.Load(tinyDir(name))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				n, err := New(m, Options{Full: true, InputGrad: true, Recompute: recompute})
				if err != nil {
					t.Fatal(err)
				}
				res, err := n.ForwardBackward(g.seqs(), 0)
				if err != nil {
					t.Fatal(err)
				}
				if rel := math.Abs(res.Mean()-g.Loss) / g.Loss; rel > 1e-5 {
					t.Errorf("loss %.9g, golden %.9g (relative error %.2g)", res.Mean(), g.Loss, rel)
				}
				seen := map[string]bool{}
				worst, worstName := 0.0, ""
				for _, gname := range gf.Names() {
					pname, ok := strings.CutPrefix(gname, "grad.")
					if !ok {
						continue
					}
					if m.Config.Tied && pname == "lm_head.weight" {
						continue // the golden sums head and lookup gradients into embed_tokens
					}
					p := n.Param(pname)
					if p == nil {
						t.Errorf("no trainable parameter %s", pname)
						continue
					}
					seen[pname] = true
					want := tensorOf(t, gf, gname)
					if len(want) != len(p.Grad) {
						t.Errorf("%s: %d gradient values, golden has %d", pname, len(p.Grad), len(want))
						continue
					}
					if d := maxRelDiff(p.Grad, want); d > worst {
						worst, worstName = d, pname
					}
					if d := maxRelDiff(p.Grad, want); d > 1e-4 {
						t.Errorf("%s: max|Δ| = %.3g·max|g| (limit 1e-4)", pname, d)
					}
				}
				for _, p := range n.Params() {
					if !seen[p.Name] {
						t.Errorf("parameter %s has no golden gradient", p.Name)
					}
				}
				for b := range g.InputIDs {
					want := tensorOf(t, gf, "grad_inputs_embeds."+string(rune('0'+b)))
					got := n.InputGradOf(b)
					if d := maxRelDiff(got, want); d > 1e-4 {
						t.Errorf("grad_inputs_embeds.%d: max|Δ| = %.3g·max|g|", b, d)
					} else if d > worst {
						worst, worstName = d, "grad_inputs_embeds"
					}
				}
				t.Logf("loss %.9f (golden %.9f); worst gradient error %.2e·max|g| (%s)", res.Mean(), g.Loss, worst, worstName)
			})
		}
	}
}

func loadTiny(t testing.TB, name string) (*model.Model, error) {
	t.Helper()
	m, err := model.Load(tinyDir(name))
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return m, err
}
