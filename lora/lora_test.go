package lora

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []model.Proj
		bad  bool
	}{
		{"q,v", []model.Proj{model.ProjQ, model.ProjV}, false},
		{"v_proj, q_proj,q", []model.Proj{model.ProjQ, model.ProjV}, false},
		{"all", []model.Proj{model.ProjQ, model.ProjK, model.ProjV, model.ProjO, model.ProjGate, model.ProjUp, model.ProjDown}, false},
		{"gate,up,down", []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown}, false},
		{"", nil, true},
		{"q,lm_head", nil, true},
	} {
		got, err := ParseTargets(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("ParseTargets(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Rank: 4, Alpha: 8, Targets: []model.Proj{model.ProjQ}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Rank: 0, Alpha: 8, Targets: ok.Targets},
		{Rank: 4, Alpha: 0, Targets: ok.Targets},
		{Rank: 4, Alpha: 8, Dropout: 1, Targets: ok.Targets},
		{Rank: 4, Alpha: 8},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestLoadErrors: broken adapter folders are errors naming the file.
func TestLoadErrors(t *testing.T) {
	m, err := model.Load("../testdata/hf-tiny/llama")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := New(m, Config{Rank: 2, Alpha: 4, Targets: []model.Proj{model.ProjQ}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	if err := a.Save(good, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(good, ConfigFile))
	weights, _ := os.ReadFile(filepath.Join(good, WeightsFile))
	for _, tc := range []struct {
		name, config, want string
		tensors            []safetensors.WriteTensor
	}{
		{"no config", "", "not a LoRA adapter folder", nil},
		{"bad json", "{", "malformed JSON", nil},
		{"dora", strings.Replace(string(cfg), `"use_dora": false`, `"use_dora": true`, 1), "DoRA", nil},
		{"prefix tuning", strings.Replace(string(cfg), `"LORA"`, `"PREFIX_TUNING"`, 1), "peft_type", nil},
		{"wrong rank", string(cfg), "want [r=2", []safetensors.WriteTensor{{Name: TensorName(0, model.ProjQ, "A"), DType: "F32", Shape: []int{3, 64}, Data: make([]byte, 4*3*64)}}},
		{"foreign tensor", string(cfg), "not a LoRA", []safetensors.WriteTensor{{Name: "lm_head.weight", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}},
		{"A without B", string(cfg), "not its partner", []safetensors.WriteTensor{{Name: TensorName(0, model.ProjQ, "A"), DType: "F32", Shape: []int{2, 64}, Data: make([]byte, 4*2*64)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.config), 0o644)
			}
			if tc.tensors != nil {
				if err := safetensors.Write(filepath.Join(dir, WeightsFile), tc.tensors, nil); err != nil {
					t.Fatal(err)
				}
			} else {
				os.WriteFile(filepath.Join(dir, WeightsFile), weights, 0o644)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// An adapter for another model is refused by Merge.
	b, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	other, err := model.Load("../testdata/hf-tiny/qwen3")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := b.Merge(other); err == nil {
		t.Errorf("merged a llama adapter into qwen3")
	}
}
