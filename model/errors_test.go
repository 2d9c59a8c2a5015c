package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/safetensors"
)

// copyFixture copies an hf-tiny fixture's config and weights to a temp dir.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "testdata", "hf-tiny", name)
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string)
		wants []string // substrings of the error
	}{
		{"unknown architecture", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "config.json"), `"LlamaForCausalLM"`, `"GPTNeoXForCausalLM"`)
		}, []string{"config.json", "unknown architecture", "GPTNeoXForCausalLM"}},
		{"malformed config", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"architectures": [`), 0o644)
		}, []string{"config.json", "malformed JSON"}},
		{"missing config", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "config.json"))
		}, []string{"config.json"}},
		{"inconsistent heads", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "config.json"), `"num_key_value_heads": 2`, `"num_key_value_heads": 3`)
		}, []string{"config.json", "num_key_value_heads"}},
		{"unsupported rope", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "config.json"), `"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4}`)
		}, []string{"config.json", "yarn"}},
		{"missing tensor", func(t *testing.T, dir string) {
			dropTensor(t, filepath.Join(dir, "model.safetensors"), "model.layers.1.mlp.up_proj.weight")
		}, []string{"model.layers.1.mlp.up_proj.weight"}},
		{"wrong shape", func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "config.json"), `"intermediate_size": 176`, `"intermediate_size": 128`)
		}, []string{"mlp", "shape"}},
		{"truncated weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, []string{"model.safetensors"}},
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, []string{dirToken}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFixture(t, "llama")
			tc.edit(t, dir)
			m, err := Load(dir)
			if err == nil {
				m.Close()
				t.Fatal("no error")
			}
			for _, w := range tc.wants {
				if w == dirToken {
					w = dir
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

const dirToken = "<dir>"

func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func dropTensor(t *testing.T, path, name string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.WriteTensor
	for _, n := range f.Names() {
		if n == name {
			continue
		}
		x, _ := f.Tensor(n)
		ts = append(ts, safetensors.WriteTensor{Name: n, DType: x.DType, Shape: x.Shape, Data: append([]byte(nil), x.Data...)})
	}
	f.Close()
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
}

func TestForwardErrors(t *testing.T) {
	m, err := LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Forward(m.NewCache(0), []int{1, 512}, false); err == nil || !strings.Contains(err.Error(), "512") {
		t.Errorf("out-of-vocabulary id: %v", err)
	}
	if _, err := m.Forward(m.NewCache(4), []int{1, 2, 3, 4, 5}, false); err == nil {
		t.Error("overflowing the cache gave no error")
	}
	if _, err := m.Forward(m.NewCache(0), nil, false); err == nil {
		t.Error("no tokens gave no error")
	}
	// A truncated llama2.c checkpoint.
	b, _ := os.ReadFile("../testdata/stories260K/stories260K.bin")
	if _, err := ParseLlama2C(b[:1000], "cut.bin"); err == nil || !strings.Contains(err.Error(), "cut.bin") {
		t.Errorf("truncated checkpoint: %v", err)
	}
	if _, err := ParseLlama2C(b[:10], "tiny.bin"); err == nil {
		t.Error("10-byte checkpoint accepted")
	}
}
