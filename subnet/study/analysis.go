package study

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/subnet"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/finetune"
)

// SimilarityMeasure describes Similarity.Matrix.
const SimilarityMeasure = "cosine similarity of the word-frequency vectors (lower-cased letter/digit runs) of the voices' calibration passages"

// TextSimilarity is the cosine similarity of the word-frequency vectors
// (lower-cased runs of letters and digits) of each voice's texts.
func TextSimilarity(texts [][]string) [][]float64 {
	vecs := make([]map[string]float64, len(texts))
	norms := make([]float64, len(texts))
	for i, ts := range texts {
		v := map[string]float64{}
		for _, t := range ts {
			for _, w := range strings.FieldsFunc(strings.ToLower(t), func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) }) {
				v[w]++
			}
		}
		for _, x := range v {
			norms[i] += x * x
		}
		vecs[i] = v
	}
	out := make([][]float64, len(texts))
	for i := range out {
		out[i] = make([]float64, len(texts))
		for j := range out[i] {
			if norms[i] == 0 || norms[j] == 0 {
				out[i][j] = math.NaN()
				continue
			}
			var dot float64
			for w, x := range vecs[i] {
				dot += x * vecs[j][w]
			}
			out[i][j] = dot / math.Sqrt(norms[i]*norms[j])
		}
	}
	return out
}

func (r *runner) similarity() Similarity {
	texts := make([][]string, len(r.studied))
	for i, v := range r.studied {
		texts[i] = r.calibTxt[v]
	}
	return Similarity{Measure: SimilarityMeasure, Voices: r.studied, Matrix: TextSimilarity(texts)}
}

// DifferMatrix is the share of entries in which every two masks differ.
func DifferMatrix(masks []*mask.Mask) ([][]float64, error) {
	out := make([][]float64, len(masks))
	for i := range out {
		out[i] = make([]float64, len(masks))
	}
	for i := range masks {
		for j := i + 1; j < len(masks); j++ {
			d, err := mask.Diff(masks[i], masks[j])
			if err != nil {
				return nil, err
			}
			out[i][j], out[j][i] = d.Total.Share, d.Total.Share
		}
	}
	return out, nil
}

// Pearson is the correlation coefficient of x and y (NaN when fewer than
// two points or either is constant).
func Pearson(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

// AgreementPearson correlates, over pairs i < j, the agreement 1 − differ
// of two masks with the similarity of their voices.
func AgreementPearson(differ, sim [][]float64) float64 {
	var x, y []float64
	for i := range differ {
		for j := i + 1; j < len(differ); j++ {
			if !math.IsNaN(sim[i][j]) {
				x = append(x, 1-differ[i][j])
				y = append(y, sim[i][j])
			}
		}
	}
	return Pearson(x, y)
}

// overlaps compares, for every method and pattern, the single-persona
// masks of the studied voices.
func (r *runner) overlaps(subs []*Subject, sim Similarity) ([]Overlap, error) {
	var out []Overlap
	type group struct {
		kind string
		meth subnet.Method
		pats []Pattern
	}
	var groups []group
	for _, meth := range r.cfg.Methods {
		if meth != subnet.Magnitude {
			groups = append(groups, group{KindSingle, meth, r.pats})
		}
	}
	if r.cfg.Sculpt {
		groups = append(groups, group{KindSculpt, MethodPersonaPruner, r.sculptPatterns()})
	}
	for _, g := range groups {
		meth := g.meth
		for _, p := range g.pats {
			var vs []string
			var masks []*mask.Mask
			for _, v := range r.studied {
				for _, s := range subs {
					if s.Kind == g.kind && s.Voice == v && s.Method == string(meth) && s.Pattern.String() == p.String() {
						mk, err := mask.Load(s.File)
						if err != nil {
							return nil, err
						}
						vs = append(vs, v)
						masks = append(masks, mk)
					}
				}
			}
			if len(masks) < 2 {
				continue
			}
			d, err := DifferMatrix(masks)
			if err != nil {
				return nil, err
			}
			idx := make([]int, len(vs))
			for i, v := range vs {
				for j, w := range sim.Voices {
					if v == w {
						idx[i] = j
					}
				}
			}
			sub := make([][]float64, len(vs))
			for i := range vs {
				sub[i] = make([]float64, len(vs))
				for j := range vs {
					sub[i][j] = sim.Matrix[idx[i]][idx[j]]
				}
			}
			out = append(out, Overlap{Method: string(meth), Pattern: p.String(), Voices: vs, Differ: d, Pearson: Num(AgreementPearson(d, sub))})
		}
	}
	return out, nil
}

// pairOverlaps compares the sides of every contrastive pair, and the two
// voices' single-persona masks at the same pattern.
func (r *runner) pairOverlaps(subs []*Subject) ([]PairOverlap, error) {
	find := func(kind, voice, method, pat, side string) *Subject {
		for _, s := range subs {
			if s.Kind == kind && s.Voice == voice && s.Pattern != nil && s.Pattern.String() == pat && s.Side == side && (method == "" || s.Method == method) {
				return s
			}
		}
		return nil
	}
	diff := func(a, b *Subject) (Num, error) {
		if a == nil || b == nil {
			return Num(math.NaN()), nil
		}
		ma, err := mask.Load(a.File)
		if err != nil {
			return 0, err
		}
		mb, err := mask.Load(b.File)
		if err != nil {
			return 0, err
		}
		d, err := mask.Diff(ma, mb)
		if err != nil {
			return 0, err
		}
		return Num(d.Total.Share), nil
	}
	single := ""
	for _, m := range []subnet.Method{subnet.Wanda, subnet.SparseGPT} {
		for _, x := range r.cfg.Methods {
			if x == m && single == "" {
				single = string(m)
			}
		}
	}
	var out []PairOverlap
	for _, pair := range r.set.Pairs {
		for _, p := range r.pats {
			pos := find(KindContrast, pair[0], "", p.String(), "pos")
			neg := find(KindContrast, pair[1], "", p.String(), "neg")
			po := PairOverlap{Pair: pair[0] + ":" + pair[1], Pattern: p.String(), SingleMethod: single}
			var err error
			if po.Contrast, err = diff(pos, neg); err != nil {
				return nil, err
			}
			if po.Single, err = diff(find(KindSingle, pair[0], single, p.String(), ""), find(KindSingle, pair[1], single, p.String(), "")); err != nil {
				return nil, err
			}
			out = append(out, po)
		}
	}
	return out, nil
}

// sft returns a LoRA adapter trained on a voice's calibration passages.
func (r *runner) sft(ctx context.Context, v string) (*Subject, error) {
	set := r.calibs[v]
	k := key("sft", r.fp, set.Hash(), r.cfg.CalibSystem, r.set.SFTRank, r.set.SFTSteps, r.set.SFTLR, r.set.Seed)
	id := v + "/lora-sft"
	dir := filepath.Join(r.cfg.Out, "sft", slug(v)+"-"+k)
	s := &Subject{ID: id, Kind: KindSFT, Method: "lora-sft", Voice: v, Key: k, File: dir, Density: 1}
	r.track.begin("sft", id)
	t0 := time.Now()
	var ad *lora.Adapter
	cached := false
	if _, err := os.Stat(dir); err == nil {
		if ad, err = lora.Load(dir); err != nil {
			return nil, fmt.Errorf("study: cached adapter %s: %w (delete it to train again)", dir, err)
		}
		cached = true
	} else {
		data, err := r.trainSeqs(v)
		if err != nil {
			return nil, err
		}
		targets, _ := lora.ParseTargets("all")
		res, err := finetune.Run(ctx, finetune.Config{Model: r.m, Data: data,
			LoRA:  lora.Config{Rank: r.set.SFTRank, Alpha: 2 * float64(r.set.SFTRank), Targets: targets, BaseModel: r.ck.Path},
			Train: train.Config{Steps: r.set.SFTSteps, BatchTokens: 4096, LR: r.set.SFTLR, Seed: r.set.Seed}, Warmup: -1,
			Threads: r.cfg.Workers, Progress: func(p train.Progress) { r.track.step("LoRA steps", p.Step, p.Total) }})
		if err != nil {
			return nil, fmt.Errorf("study: SFT of %s: %w", v, err)
		}
		if res.Interrupted {
			return nil, ctx.Err()
		}
		ad = res.Adapter
		if err := ad.Save(dir, map[string]any{"masque_study": id}); err != nil {
			return nil, err
		}
	}
	r.track.end("sft", cached, time.Since(t0))
	s.build = func(context.Context) (*model.Model, error) { return ad.Merged(r.m) }
	return s, nil
}

// fid returns a subject's fidelity on its voice with the given prompt
// (NaN when not measured).
func fid(s *Subject, v string, prompted bool) float64 {
	m := s.Empty
	if prompted {
		m = s.Prompted
	}
	if f, ok := m[v]; ok {
		return float64(f.Fidelity)
	}
	return math.NaN()
}

// MaxBestCost is the largest held-out perplexity cost on the other voices
// (CostOthers) a mask may have to be a voice's best mask, so that a mask
// that wrecks the model does not win by producing the voice's words alone.
const MaxBestCost = 1.5

// Best returns, per studied voice, the single-persona or contrastive mask
// with the highest fidelity under an empty prompt among those whose
// perplexity cost on the other voices is at most MaxBestCost (ties: the
// lower cost), or, when none is, among all; nil when there is no mask.
func (res *Results) Best(v string) *Subject {
	if b := res.best(v, MaxBestCost); b != nil {
		return b
	}
	return res.best(v, math.Inf(1))
}

func (res *Results) best(v string, maxCost float64) *Subject {
	var best *Subject
	for _, s := range res.Subjects {
		if s.Voice != v || (s.Kind != KindSingle && s.Kind != KindContrast) || !(float64(s.CostOthers) <= maxCost) {
			continue
		}
		f := fid(s, v, false)
		if math.IsNaN(f) {
			continue
		}
		if best == nil || f > fid(best, v, false) || (f == fid(best, v, false) && float64(s.CostOthers) < float64(best.CostOthers)) {
			best = s
		}
	}
	return best
}

// writeRegistry writes a `masque serve` registry with, for every studied
// voice, the prompted persona (the unmasked model with the voice's system
// prompt), the best mask alone (no system prompt) and the best mask with
// the prompt.
func (r *runner) writeRegistry(res *Results) error {
	var specs []persona.Spec
	for _, v := range r.studied {
		vo, _ := r.corp.Voice(v)
		specs = append(specs, persona.Spec{Name: v + "-prompted", SystemPrompt: vo.Persona, Tags: []string{"prompted", v}})
		if b := res.Best(v); b != nil {
			specs = append(specs,
				persona.Spec{Name: v + "-masked", Mask: b.File, Tags: []string{"masked", v, b.ID}},
				persona.Spec{Name: v + "-masked-prompted", SystemPrompt: vo.Persona, Mask: b.File, Tags: []string{"masked", "prompted", v, b.ID}})
		}
	}
	path := filepath.Join(r.cfg.Out, RegistryFile)
	if err := persona.SaveRegistry(path, specs); err != nil {
		return err
	}
	res.Registry = RegistryFile
	return nil
}

// plan counts the jobs for the progress report.
func (r *runner) plan() {
	t := r.track
	per := func(n int) { t.plan("eval", 2*n); t.plan("ppl", n) }
	per(1)
	for _, m := range r.cfg.Methods {
		for _, p := range r.pats {
			switch {
			case m == subnet.Magnitude:
				t.plan("mask", 1)
				per(1)
			case m == subnet.SparseGPT && p.Granularity == FFN:
			default:
				t.plan("mask", len(r.studied))
				per(len(r.studied))
			}
		}
	}
	t.plan("mask", len(r.set.Pairs)*len(r.pats))
	per(2 * len(r.set.Pairs) * len(r.pats))
	if r.cfg.SFT {
		t.plan("sft", len(r.studied))
		per(len(r.studied))
	}
	if r.cfg.Sculpt {
		n := len(r.studied) * len(r.cfg.SculptSparsities)
		t.plan("sculpt", n)
		per(n)
	}
}

// tracker counts jobs and estimates the time left.
type tracker struct {
	fn          func(Progress)
	start       time.Time
	total, done int
	cached      int
	left        map[string]int
	secs        map[string]float64
	runs        map[string]int
	cur         Progress
	lastStep    time.Time
}

func newTracker(fn func(Progress), start time.Time) *tracker {
	return &tracker{fn: fn, start: start, left: map[string]int{}, secs: map[string]float64{}, runs: map[string]int{}}
}

func (t *tracker) plan(kind string, n int) { t.left[kind] += n; t.total += n }

func (t *tracker) eta() time.Duration {
	var all float64
	n := 0
	for k, s := range t.secs {
		all += s
		n += t.runs[k]
	}
	if n == 0 {
		return -1
	}
	var left float64
	for k, c := range t.left {
		mean := all / float64(n)
		if t.runs[k] > 0 {
			mean = t.secs[k] / float64(t.runs[k])
		}
		left += mean * float64(c)
	}
	return time.Duration(left * float64(time.Second))
}

func (t *tracker) emit() {
	if t.fn == nil {
		return
	}
	t.cur.Done, t.cur.Total, t.cur.Cached = t.done, t.total, t.cached
	t.cur.Elapsed = time.Since(t.start)
	t.cur.ETA = t.eta()
	t.fn(t.cur)
}

func (t *tracker) begin(kind, item string) {
	t.cur = Progress{Job: kind, Item: item}
	t.lastStep = time.Time{} // a job's first step is always reported
	t.emit()
}

// step reports progress inside the current job: its first and last step,
// and at most 5 times a second in between.
func (t *tracker) step(stage string, d, n int) {
	if now := time.Now(); d < n && now.Sub(t.lastStep) < 200*time.Millisecond {
		return
	} else {
		t.lastStep = now
	}
	t.cur.Step, t.cur.StepDone, t.cur.StepTotal = stage, d, n
	t.emit()
}

func (t *tracker) end(kind string, cached bool, d time.Duration) {
	t.done++
	if t.left[kind] > 0 {
		t.left[kind]--
	}
	if cached {
		t.cached++
	} else {
		t.secs[kind] += d.Seconds()
		t.runs[kind]++
	}
	t.cur.Step, t.cur.StepDone, t.cur.StepTotal = "", 0, 0
	t.emit()
}
