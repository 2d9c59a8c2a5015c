package subnet

import (
	"context"
	"errors"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// StatsConfig is one `masque stats` run: the activation statistics of every
// linear layer's input over a calibration set, saved for later sweeps
// (SweepConfig.StatsDir).
type StatsConfig struct {
	Model      *model.Model
	ModelName  string // recorded in the manifest
	Calib      calib.Source
	CalibModel calib.Model
	// GramLayers, when non-empty, are the layers whose inputs also get the
	// Gram matrix XᵀX (for SparseGPT; 8·d² bytes per input).
	GramLayers map[int]bool
	// Out is the folder that receives stats.safetensors and manifest.json.
	Out string
	// Progress, if set, follows the stages "persona answers" (a persona
	// calibration set) and "statistics".
	Progress func(stage string, done, total int)
	// Logf, if set, receives warnings.
	Logf func(format string, a ...any)
}

// CollectStats builds cfg's calibration set, collects the statistics over it
// and saves them to cfg.Out; it returns them with the set.
func CollectStats(ctx context.Context, cfg StatsConfig) (*stats.Stats, *calib.Set, error) {
	if cfg.Out == "" {
		return nil, nil, errors.New("stats: no output folder")
	}
	set, err := BuildCalib(ctx, cfg.Calib, cfg.CalibModel, cfg.Progress, cfg.Logf)
	if err != nil {
		return nil, nil, err
	}
	o := stats.Options{}
	if len(cfg.GramLayers) > 0 {
		o.Gram = func(l int, _ stats.Input) bool { return cfg.GramLayers[l] }
	}
	st, err := stats.Collect(ctx, cfg.Model, set.Samples, set.Record(), o, stage(cfg.Progress, "statistics"))
	if err != nil {
		return nil, nil, err
	}
	st.Manifest.Model = cfg.ModelName
	if err := st.Save(cfg.Out); err != nil {
		return nil, nil, err
	}
	return st, set, nil
}
