package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/atomicfile"
	"github.com/masque-ai/masque/internal/fileerr"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/safetensors"
)

// File names of a PEFT adapter folder.
const (
	WeightsFile = "adapter_model.safetensors"
	ConfigFile  = "adapter_config.json"
)

// Save writes the adapter to dir as adapter_model.safetensors (F32 tensors
// named as PEFT names them, A [r, in] and B [out, r]) and adapter_config.json
// (peft_type LORA, task_type CAUSAL_LM, bias "none"). Each file is replaced
// atomically. extra, if not nil, is recorded under "masque_training" in the
// config.
func (a *Adapter) Save(dir string, extra map[string]any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving LoRA adapter: %w", err)
	}
	var ts []safetensors.WriteTensor
	r := a.Config.Rank
	for _, p := range a.All() {
		ts = append(ts,
			safetensors.WriteTensor{Name: TensorName(p.Layer, p.Proj, "A"), DType: "F32", Shape: []int{r, p.In}, Data: safetensors.F32Bytes(p.A)},
			safetensors.WriteTensor{Name: TensorName(p.Layer, p.Proj, "B"), DType: "F32", Shape: []int{p.Out, r}, Data: safetensors.F32Bytes(p.B)})
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg, err := marshalConfig(a.Config, extra)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ConfigFile), func(w io.Writer) error {
		_, err := w.Write(cfg)
		return err
	})
}

// Load reads a PEFT LoRA adapter folder (adapter_config.json and
// adapter_model.safetensors). The adapted layers and projections come from
// the tensor names; shapes are checked against r. DoRA, rank or alpha
// patterns and bias training are rejected with an error naming the file.
func Load(dir string) (*Adapter, error) {
	cpath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cpath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: not a LoRA adapter folder (no %s)", dir, ConfigFile)
		}
		return nil, fmt.Errorf("reading LoRA adapter: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %s", cpath, fileerr.JSON(err))
	}
	switch {
	case pc.PeftType != "" && pc.PeftType != "LORA":
		return nil, fmt.Errorf("%s: peft_type %q is not supported (only LORA)", cpath, pc.PeftType)
	case pc.UseDora:
		return nil, fmt.Errorf("%s: DoRA adapters (use_dora) are not supported", cpath)
	case len(pc.RankPattern) > 0 || len(pc.AlphaPattern) > 0:
		return nil, fmt.Errorf("%s: rank_pattern/alpha_pattern are not supported", cpath)
	case pc.Bias != "" && pc.Bias != "none":
		return nil, fmt.Errorf("%s: bias %q is not supported (only \"none\")", cpath, pc.Bias)
	case pc.FanInFanOut:
		return nil, fmt.Errorf("%s: fan_in_fan_out adapters are not supported", cpath)
	}
	cfg := Config{Rank: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, RSLoRA: pc.UseRslora,
		BaseModel: pc.BaseModelNameOrPath, BaseFingerprint: pc.BaseFingerprint, Layers: pc.LayersToTransform}
	if pc.BaseArch != "" && len(pc.BaseProbe) > 0 {
		cfg.BaseArch, cfg.BaseProbe = pc.BaseArch, new(model.Probe)
		if err := json.Unmarshal(pc.BaseProbe, cfg.BaseProbe); err != nil {
			return nil, fmt.Errorf("%s: masque_base_probe is not a weight probe of this masque ({type, rows: %d, cols: %d, values: base64 float32s})", cpath, model.ProbeRows, model.ProbeCols)
		}
	}
	if cfg.Rank <= 0 {
		return nil, fmt.Errorf("%s: r = %d must be positive", cpath, cfg.Rank)
	}
	if !(cfg.Alpha > 0) {
		return nil, fmt.Errorf("%s: lora_alpha = %g must be positive", cpath, cfg.Alpha)
	}
	wpath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wpath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a := &Adapter{Config: cfg, dir: dir}
	for _, name := range f.Names() {
		l, p, which, ok := parseTensorName(name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q is not a LoRA A/B weight of a decoder projection", wpath, name)
		}
		t, _ := f.Tensor(name)
		if len(t.Shape) != 2 {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, want 2 dimensions", wpath, name, t.Shape)
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		for len(a.Pairs) <= l {
			a.Pairs = append(a.Pairs, [model.NumProj]*Pair{})
		}
		pr := a.Pairs[l][p]
		if pr == nil {
			pr = &Pair{Layer: l, Proj: p}
			a.Pairs[l][p] = pr
		}
		if which == "A" {
			if t.Shape[0] != cfg.Rank {
				return nil, fmt.Errorf("%s: tensor %q has shape %v, want [r=%d, in]", wpath, name, t.Shape, cfg.Rank)
			}
			pr.A, pr.In = v, t.Shape[1]
		} else {
			if t.Shape[1] != cfg.Rank {
				return nil, fmt.Errorf("%s: tensor %q has shape %v, want [out, r=%d]", wpath, name, t.Shape, cfg.Rank)
			}
			pr.B, pr.Out = v, t.Shape[0]
		}
	}
	var targets []model.Proj
	for _, pr := range a.All() {
		if pr.A == nil || pr.B == nil {
			return nil, fmt.Errorf("%s: layer %d %s has lora_%s but not its partner", wpath, pr.Layer, pr.Proj.HFName(), map[bool]string{true: "A", false: "B"}[pr.A != nil])
		}
		if !slices.Contains(targets, pr.Proj) {
			targets = append(targets, pr.Proj)
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%s: no LoRA tensors", wpath)
	}
	a.Config.Targets = sortedUnique(targets)
	return a, nil
}

// ReadBase returns the base model the adapter folder dir records
// (adapter_config.json's base_model_name_or_path and
// masque_base_fingerprint; only that file is read). An adapter that records
// no base gives an empty Ref.
func ReadBase(dir string) (checkpoint.Base, error) {
	cpath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cpath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return checkpoint.Base{}, fmt.Errorf("%s: not a LoRA adapter folder (no %s)", dir, ConfigFile)
		}
		return checkpoint.Base{}, fmt.Errorf("reading LoRA adapter: %w", err)
	}
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return checkpoint.Base{}, fmt.Errorf("%s: malformed JSON: %s", cpath, fileerr.JSON(err))
	}
	return checkpoint.Base{Ref: pc.BaseModelNameOrPath, Fingerprint: pc.BaseFingerprint, File: cpath}, nil
}
