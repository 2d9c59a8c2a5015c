package sculpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/masque-ai/masque/eval/voices"
)

// RunInfo is a finished sculpt run read back from its folder.
type RunInfo struct {
	Dir              string      `json:"dir"`
	Persona          string      `json:"persona"`
	Method           string      `json:"method"`
	Seed             uint64      `json:"seed"`
	Ratio            float64     `json:"ratio"`
	ModelFingerprint string      `json:"model_fingerprint"`
	Keep             [][]int     `json:"-"`
	Scores           [][]float32 `json:"-"`
	DFF              int         `json:"intermediate_size"`
}

// LoadRun reads a sculpt run folder (run.json, keep_indices.json and, when
// present, scores.json).
func LoadRun(dir string) (*RunInfo, error) {
	data, err := os.ReadFile(filepath.Join(dir, RunFile))
	if err != nil {
		return nil, fmt.Errorf("sculpt: %s is not a finished sculpt run: %w", dir, err)
	}
	var rec RunRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Format != RunFormat {
		return nil, fmt.Errorf("sculpt: %s: not a sculpt run record (format %q)", filepath.Join(dir, RunFile), rec.Format)
	}
	ri := &RunInfo{Dir: dir, Persona: rec.Persona, Method: rec.Method, Ratio: rec.Ratio, ModelFingerprint: rec.ModelFingerprint, DFF: rec.DFF}
	if s, ok := rec.Choices["seed"].(float64); ok {
		ri.Seed = uint64(s)
	}
	if ri.Keep, _, err = LoadKeep(filepath.Join(dir, KeepFile)); err != nil {
		return nil, err
	}
	if sd, err := os.ReadFile(filepath.Join(dir, ScoresFile)); err == nil {
		if err := json.Unmarshal(sd, &ri.Scores); err != nil {
			return nil, fmt.Errorf("sculpt: %s: %v", filepath.Join(dir, ScoresFile), err)
		}
	}
	for l, ks := range ri.Keep {
		if len(ks) != len(ri.Keep[0]) || (len(ks) > 0 && ks[len(ks)-1] >= ri.DFF) {
			return nil, fmt.Errorf("sculpt: %s: layer %d of the keep indices does not fit intermediate_size %d", dir, l, ri.DFF)
		}
	}
	return ri, nil
}

// LayerOverlap is |A_l ∩ B_l| / k for every layer.
func LayerOverlap(a, b [][]int) []float64 {
	out := make([]float64, len(a))
	for l := range a {
		if len(a[l]) > 0 {
			out[l] = float64(overlapCount(a[l], b[l])) / float64(len(a[l]))
		}
	}
	return out
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(1, len(v)))
}

// Pearson is the correlation coefficient of x and y (NaN when either is
// constant).
func Pearson(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	mx, my := mean(x), mean(y)
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

// maskVector flattens keep indices into a 0/1 vector of L·dff entries.
func maskVector(keep [][]int, dff int) []float64 {
	out := make([]float64, len(keep)*dff)
	for l, ks := range keep {
		for _, i := range ks {
			out[l*dff+i] = 1
		}
	}
	return out
}

func flatScores(s [][]float32) []float64 {
	var out []float64
	for _, row := range s {
		for _, v := range row {
			out = append(out, float64(v))
		}
	}
	return out
}

// SeedPair compares two runs of one persona.
type SeedPair struct {
	Persona   string  `json:"persona"`
	A         string  `json:"a"`
	B         string  `json:"b"`
	Overlap   float64 `json:"overlap"`
	MaskCorr  float64 `json:"mask_correlation"`
	ScoreCorr float64 `json:"score_correlation"`
}

// MarshalJSON writes NaN as null.
func (p SeedPair) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"persona": p.Persona, "a": p.A, "b": p.B, "overlap": p.Overlap,
		"mask_correlation": nanNil(p.MaskCorr), "score_correlation": nanNil(p.ScoreCorr)})
}

// AnalyzeConfig is an analysis of finished sculpt runs.
type AnalyzeConfig struct {
	// Runs are the run folders (same model and ratio).
	Runs []string
	// Corpus, if set, gives the persona similarity (word-frequency cosine
	// of the personas' train splits).
	Corpus string
	// Out receives analysis.json and analysis.html (none when empty).
	Out string
}

// Analysis is analysis.json.
type Analysis struct {
	Runs  []*RunInfo `json:"runs"`
	Seeds []SeedPair `json:"seed_pairs"`
	// Personas, one run each (the first given), in the order given.
	Personas []string `json:"personas"`
	// MaskOverlap[i][j] is the mean over layers of the kept-channel
	// overlap; PersonaSimilarity[i][j] the personas' text similarity.
	MaskOverlap       [][]float64 `json:"mask_overlap"`
	PersonaSimilarity [][]float64 `json:"persona_similarity,omitempty"`
	// SimilarityCorrelation is Pearson's r between the two over the
	// persona pairs (nil with fewer than three pairs or no corpus).
	SimilarityCorrelation *float64 `json:"similarity_correlation"`
	Pairs                 int      `json:"pairs"`
	// LayerOverlap[l][i][j] is layer l's kept-channel overlap.
	LayerOverlap [][][]float64 `json:"layer_overlap"`
	// Note says why the persona similarity is missing, when it is.
	Note string `json:"note,omitempty"`
}

// Analyze compares the masks of finished runs.
func Analyze(cfg AnalyzeConfig) (*Analysis, error) {
	if len(cfg.Runs) == 0 {
		return nil, errors.New("sculpt: no runs to analyze")
	}
	a := &Analysis{}
	for _, d := range cfg.Runs {
		r, err := LoadRun(d)
		if err != nil {
			return nil, err
		}
		if len(a.Runs) > 0 {
			f := a.Runs[0]
			if r.ModelFingerprint != f.ModelFingerprint || len(r.Keep) != len(f.Keep) || len(r.Keep[0]) != len(f.Keep[0]) {
				return nil, fmt.Errorf("sculpt: %s and %s are runs of different models or ratios; analyze runs of one model at one ratio", f.Dir, d)
			}
		}
		a.Runs = append(a.Runs, r)
	}
	dff := a.Runs[0].DFF
	byPersona := map[string]*RunInfo{}
	for i, r := range a.Runs {
		name := r.Persona
		if name == "" {
			name = r.Method
		}
		for _, o := range a.Runs[:i] {
			oname := o.Persona
			if oname == "" {
				oname = o.Method
			}
			if oname != name {
				continue
			}
			p := SeedPair{Persona: name, A: o.Dir, B: r.Dir, Overlap: mean(LayerOverlap(o.Keep, r.Keep)),
				MaskCorr: Pearson(maskVector(o.Keep, dff), maskVector(r.Keep, dff)), ScoreCorr: math.NaN()}
			if o.Scores != nil && r.Scores != nil {
				p.ScoreCorr = Pearson(flatScores(o.Scores), flatScores(r.Scores))
			}
			a.Seeds = append(a.Seeds, p)
		}
		if byPersona[name] == nil {
			byPersona[name] = r
			a.Personas = append(a.Personas, name)
		}
	}
	P, L := len(a.Personas), len(a.Runs[0].Keep)
	a.MaskOverlap = square(P)
	a.LayerOverlap = make([][][]float64, L)
	for l := range a.LayerOverlap {
		a.LayerOverlap[l] = square(P)
	}
	for i, pi := range a.Personas {
		for j, pj := range a.Personas {
			lo := LayerOverlap(byPersona[pi].Keep, byPersona[pj].Keep)
			a.MaskOverlap[i][j] = mean(lo)
			for l, v := range lo {
				a.LayerOverlap[l][i][j] = v
			}
		}
	}
	if cfg.Corpus != "" && P > 1 {
		sim, err := PersonaSimilarity(cfg.Corpus, a.Personas)
		if err != nil {
			return nil, err
		}
		a.PersonaSimilarity = sim
		var xs, ys []float64
		for i := 0; i < P; i++ {
			for j := i + 1; j < P; j++ {
				xs = append(xs, a.MaskOverlap[i][j])
				ys = append(ys, sim[i][j])
			}
		}
		a.Pairs = len(xs)
		if len(xs) >= 3 {
			a.SimilarityCorrelation = nanNil(Pearson(xs, ys))
		}
		if a.SimilarityCorrelation == nil {
			a.Note = fmt.Sprintf("No correlation between mask overlap and persona similarity: %d persona pairs (at least 3, not all equal, are needed).", a.Pairs)
		}
	} else if P > 1 {
		a.Note = "No persona similarity: no voices corpus given."
	}
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, fmt.Errorf("sculpt: %w", err)
		}
		if err := writeReport(cfg.Out, "analysis", a, a.HTML); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func square(n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, n)
	}
	return out
}

// PersonaSimilarity is the cosine similarity of the word-frequency vectors
// (lower-cased letter/digit runs) of the personas' train splits.
func PersonaSimilarity(corpusDir string, names []string) ([][]float64, error) {
	corp, err := voices.OpenCorpus(corpusDir)
	if err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	vecs := make([]map[string]float64, len(names))
	for i, n := range names {
		rows, err := corp.Rows(n, voices.SplitTrain)
		if err != nil {
			return nil, fmt.Errorf("sculpt: persona similarity: %w", err)
		}
		v := map[string]float64{}
		for _, r := range rows {
			for _, w := range strings.FieldsFunc(strings.ToLower(r.Text), func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) }) {
				v[w]++
			}
		}
		vecs[i] = v
	}
	out := square(len(names))
	for i := range names {
		for j := range names {
			var ab, aa, bb float64
			for w, x := range vecs[i] {
				ab += x * vecs[j][w]
				aa += x * x
			}
			for _, y := range vecs[j] {
				bb += y * y
			}
			if aa > 0 && bb > 0 {
				out[i][j] = ab / math.Sqrt(aa*bb)
			}
		}
	}
	return out, nil
}

var analysisTmpl = template.Must(template.New("a").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>masque sculpt analyze</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}th{background:#f4f4f4}</style>
</head><body>
<h1>Persona-Pruner masks</h1>
{{.}}
</body></html>
`))

var analysisBodyTmpl = template.Must(template.New("ab").Parse(`<h2>Across seeds</h2>
{{if .A.Seeds}}<table><tr><th>persona</th><th>run A</th><th>run B</th><th>overlap</th><th>mask r</th><th>score r</th></tr>
{{range .Seeds}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>{{else}}<p>No two runs of the same persona.</p>{{end}}
<h2>Between personas</h2>
<p>{{.Corr}}</p>
{{.Overlap}} {{.Sim}}
<h2>Kept-channel overlap per layer</h2>
{{range .Layers}}{{.}}{{end}}
`))

// HTML renders analysis.html (heat maps as inline SVG).
func (a *Analysis) HTML() ([]byte, error) {
	body, err := a.bodyHTML()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = analysisTmpl.Execute(&b, body)
	return b.Bytes(), err
}

// bodyHTML renders the analysis's sections (seed pairs, persona overlap
// against persona similarity, per-layer heat maps) as an HTML fragment.
func (a *Analysis) bodyHTML() (template.HTML, error) {
	f := func(v float64) string {
		if !finite(v) {
			return "–"
		}
		return fmt.Sprintf("%.3f", v)
	}
	var seeds [][]string
	for _, p := range a.Seeds {
		seeds = append(seeds, []string{p.Persona, p.A, p.B, f(p.Overlap), f(p.MaskCorr), f(p.ScoreCorr)})
	}
	corr := "Persona similarity needs --corpus and at least three personas."
	if a.SimilarityCorrelation != nil {
		corr = fmt.Sprintf("Pearson r between mask overlap and persona similarity over %d persona pairs: %.3f", a.Pairs, *a.SimilarityCorrelation)
	} else if a.Note != "" {
		corr = a.Note
	}
	var sim template.HTML
	if a.PersonaSimilarity != nil {
		sim = template.HTML(heatSVG("persona similarity (word-frequency cosine)", a.Personas, a.Personas, a.PersonaSimilarity))
	}
	var layers []template.HTML
	for l, m := range a.LayerOverlap {
		layers = append(layers, template.HTML(heatSVG(fmt.Sprintf("layer %d", l), a.Personas, a.Personas, m)))
	}
	var b bytes.Buffer
	err := analysisBodyTmpl.Execute(&b, map[string]any{"A": a, "Seeds": seeds, "Corr": corr,
		"Overlap": template.HTML(heatSVG("mean kept-channel overlap", a.Personas, a.Personas, a.MaskOverlap)), "Sim": sim, "Layers": layers})
	return template.HTML(b.String()), err
}
