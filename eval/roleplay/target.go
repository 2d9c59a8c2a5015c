package roleplay

import (
	"context"
	"errors"
	"os"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/filehash"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/persona"
)

// Target is the model under evaluation, as masque eval run's flags select
// it: a local checkpoint (optionally with a mask applied in memory, and
// reference metrics from its log-probabilities) or a model behind an
// OpenAI-compatible endpoint.
type Target struct {
	Checkpoint *checkpoint.Checkpoint // a local model
	Mask       string                 // mask file applied to the local model in memory

	URL, Name string // an endpoint, instead of Checkpoint
	Key       string // the endpoint's API key ("": $MASQUE_MODEL_KEY)

	MaxTokens   int     // longest answer
	Temperature float32 // 0: greedy
	Seed        int64   // sampling seed when Temperature > 0

	// Reference selects the multiple-choice tests and perplexity data of a
	// local model (its Progress follows them).
	Reference ReferenceOptions
}

// ModelKeyEnv is the environment variable of an endpoint's API key when
// Target.Key is empty (never OPENAI_API_KEY, so that a key is only sent
// where it was meant to go).
const ModelKeyEnv = "MASQUE_MODEL_KEY"

// ErrEndpointReference says that masks and reference metrics need a local
// model: an endpoint gives no log-probabilities of given text.
var ErrEndpointReference = errors.New("--mask, --mc-tests and --ppl-data need a local --model (an endpoint gives no log-probabilities of given text)")

// SetTarget fills cfg's generator, model description and reference metrics
// from t, and the Method and Sparsity recorded for plots where cfg leaves
// them open (Method "", Sparsity nil): "endpoint"; the mask's method and
// sparsity ("mask" when the mask names none); or "dense" at sparsity 0.
func (cfg *Config) SetTarget(ctx context.Context, t Target) error {
	if t.URL != "" {
		if t.Mask != "" || len(t.Reference.MCTests) > 0 || len(t.Reference.PPLData) > 0 {
			return ErrEndpointReference
		}
		var seed *int64
		if t.Temperature > 0 {
			seed = &t.Seed
		}
		key := t.Key
		if key == "" {
			key = os.Getenv(ModelKeyEnv)
		}
		cfg.Gen = &Endpoint{Client: &openaiclient.Client{Name: "model", URL: t.URL, APIKey: key}, Model: t.Name,
			MaxTokens: t.MaxTokens, Temperature: float64(t.Temperature), Seed: seed}
		cfg.Model = t.Name + " @ " + t.URL
		cfg.Reference = &Reference{Notes: []string{"multiple-choice tests and perplexity need a local model"}}
		if cfg.Method == "" {
			cfg.Method = "endpoint"
		}
		return nil
	}
	ck := t.Checkpoint
	m, extra, weights := ck.Model, "", ""
	cfg.Model = ck.Path
	if t.Mask != "" {
		mk, err := mask.Load(t.Mask)
		if err != nil {
			return err
		}
		// Applied per sequence (nothing copied); the report and caches
		// name the masked weights, as a masked copy's would.
		if m, err = persona.MaskedModel(ck.Model, mk); err != nil {
			return err
		}
		if weights, err = mask.FingerprintMasked(ck.Model, mk); err != nil {
			return err
		}
		sum, err := filehash.SHA256(t.Mask)
		if err != nil {
			return err
		}
		extra = "mask:" + sum
		cfg.Model += " + mask " + t.Mask
		if cfg.Sparsity == nil {
			s := mk.Info.Sparsity
			cfg.Sparsity = &s
		}
		if cfg.Method == "" {
			cfg.Method = "mask"
			if mk.Info.Method != "" {
				cfg.Method = mk.Info.Method
			}
		}
	}
	if cfg.Method == "" {
		cfg.Method = "dense"
	}
	if cfg.Sparsity == nil && cfg.Method == "dense" {
		zero := 0.0
		cfg.Sparsity = &zero
	}
	gen, err := NewLocalWeights(ck, m, weights, generate.Options{MaxTokens: t.MaxTokens, Temperature: t.Temperature, Seed: uint64(t.Seed)}, extra)
	if err != nil {
		return err
	}
	cfg.Gen = gen
	cfg.Reference, err = ComputeReference(ctx, ck, m, t.Reference)
	return err
}
