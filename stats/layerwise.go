package stats

import (
	"context"
	"fmt"

	"github.com/masque-ai/masque/model"
)

// Layerwise runs calibration samples through a model one decoder layer at
// a time (model.Pass), keeping each sample's residual stream between
// layers, so that the statistics of layer l are collected with one layer
// pass per sample instead of a forward pass through layers 0 … l. Between
// layers the caller may change the weights of the layers it has passed (a
// sequential pruner does: layer l+1's inputs then come from the already
// pruned layers 0 … l).
//
// Memory: the residual streams (all samples' tokens × Hidden float32) and
// one key/value cache as long as the longest sample; the statistics of one
// layer at a time. A Layerwise is not safe for concurrent use; once an
// Advance or Step has failed part-way it refuses further work.
type Layerwise struct {
	m       *model.Model
	samples [][]int
	x       [][]float32 // per sample: the residual stream entering layer next
	next    int
	cache   *model.Cache
	tokens  int64
	err     error // set when a run stopped part-way: the streams are then mixed
}

// NewLayerwise prepares to run samples (token ids, already truncated)
// through m a layer at a time, starting at layer 0.
func NewLayerwise(m *model.Model, samples [][]int) (*Layerwise, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("stats: no calibration samples")
	}
	longest := 0
	var tokens int64
	for i, s := range samples {
		if len(s) == 0 {
			return nil, fmt.Errorf("stats: calibration sample %d is empty", i+1)
		}
		longest = max(longest, len(s))
		tokens += int64(len(s))
	}
	return &Layerwise{m: m, samples: samples, x: make([][]float32, len(samples)), cache: m.NewCache(longest), tokens: tokens}, nil
}

// Next is the layer the residual streams enter: the one Collect, Advance
// and Step run (Layers when every layer has been run).
func (w *Layerwise) Next() int { return w.next }

// Tokens is the number of tokens over all samples.
func (w *Layerwise) Tokens() int64 { return w.tokens }

// Collect runs layer Next() over every sample with the model's current
// weights and returns the statistics of its inputs (Stats.In has an entry
// per layer; only layer Next()'s are set; o.Layer is ignored and o.Gram is
// asked about layer Next() only), with man completed as Collector.Stats
// does. The residual streams are left as they were, so the layer can be
// changed and then run with Advance. progress, if set, is called after
// each sample.
func (w *Layerwise) Collect(ctx context.Context, o Options, man Manifest, progress func(done, total int)) (*Stats, error) {
	return w.run(ctx, &o, man, false, progress)
}

// Advance runs layer Next() over every sample with the model's current
// weights, moving the residual streams on to the next layer's input.
func (w *Layerwise) Advance(ctx context.Context, progress func(done, total int)) error {
	_, err := w.run(ctx, nil, Manifest{}, true, progress)
	return err
}

// Step is Collect and Advance in one pass over the samples.
func (w *Layerwise) Step(ctx context.Context, o Options, man Manifest, progress func(done, total int)) (*Stats, error) {
	return w.run(ctx, &o, man, true, progress)
}

func (w *Layerwise) run(ctx context.Context, o *Options, man Manifest, advance bool, progress func(done, total int)) (*Stats, error) {
	if w.err != nil {
		return nil, w.err
	}
	l := w.next
	if l >= w.m.Config.Layers {
		return nil, fmt.Errorf("stats: every one of the model's %d layers has been run", w.m.Config.Layers)
	}
	var col *Collector
	var hooks *model.Hooks
	if o != nil {
		oo := *o
		oo.Layer = func(i int) bool { return i == l }
		col = NewCollector(w.m, oo)
		hooks = col.Hooks()
	}
	fail := func(err error) (*Stats, error) {
		if advance {
			w.err = fmt.Errorf("stats: an earlier layer pass stopped part-way (%w)", err)
		}
		return nil, err
	}
	for i, s := range w.samples {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		w.cache.Reset()
		p, err := w.m.Begin([]model.BatchSeq{{Cache: w.cache, Tokens: s, Hooks: hooks}})
		if err != nil {
			return fail(fmt.Errorf("stats: calibration sample %d: %w", i+1, err))
		}
		if w.x[i] == nil {
			w.x[i] = append([]float32(nil), p.Residual()...) // the embeddings, layer 0's input
		} else {
			copy(p.Residual(), w.x[i])
		}
		if col != nil {
			col.BeginSample()
		}
		if err := p.Layer(l); err != nil {
			return fail(err)
		}
		if col != nil {
			col.EndSample()
			if err := col.Err(); err != nil {
				return fail(fmt.Errorf("stats: calibration sample %d: %w", i+1, err))
			}
		}
		if advance {
			copy(w.x[i], p.Residual())
		}
		if progress != nil {
			progress(i+1, len(w.samples))
		}
	}
	if advance {
		w.next++
	}
	if col == nil {
		return nil, nil
	}
	return col.Stats(man), nil
}
