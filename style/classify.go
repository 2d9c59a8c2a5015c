package style

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// ClassifyConfig configures Classify: nearest-profile classification of
// held-out passages of a voices corpus.
type ClassifyConfig struct {
	// Scorer holds the profiles (one per voice, named as the voices).
	Scorer *Scorer
	// Corpus is the voices corpus folder; Split its held-out split
	// (default "test").
	Corpus, Split string
	// ChunkWords is the passage size (default 100): a document's text is
	// cut at sentence ends into chunks of at least that many words (a last
	// piece under half of it joins the chunk before).
	ChunkWords int
	// PerVoice is the most chunks per voice, chosen evenly (default 50).
	PerVoice int
	// Progress, if set, is called after each chunk.
	Progress func(done, total int)
}

// Parts of a classification.
var ClassifyParts = []string{"lexical", "syntactic", "pragmatic", "all"}

// ClassifyResult holds accuracies per part, overall and per voice, and
// the confusion matrix of "all" (rows: true voice, columns: predicted).
type ClassifyResult struct {
	Voices    []string                      `json:"voices"`
	Chunks    int                           `json:"chunks"`
	Words     int                           `json:"words"`
	Accuracy  map[string]float64            `json:"accuracy"`
	PerVoice  map[string]map[string]float64 `json:"per_voice"`
	Confusion [][]int                       `json:"confusion_all"`
}

// Chunks cuts a document into passages of at least n words at sentence
// ends.
func Chunks(text string, n int) []string {
	var sents []string
	start := 0
	for i := 0; i < len(text); i++ {
		if c := text[i]; (c == '.' || c == '!' || c == '?') && (i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n') {
			sents = append(sents, strings.TrimSpace(text[start:i+1]))
			start = i + 1
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		sents = append(sents, s)
	}
	var out []string
	var cur []string
	words := 0
	for _, s := range sents {
		cur = append(cur, s)
		words += len(strings.Fields(s))
		if words >= n {
			out = append(out, strings.Join(cur, " "))
			cur, words = nil, 0
		}
	}
	if len(cur) > 0 {
		if words < n/2 && len(out) > 0 {
			out[len(out)-1] += " " + strings.Join(cur, " ")
		} else {
			out = append(out, strings.Join(cur, " "))
		}
	}
	return out
}

// Classify assigns every held-out chunk to the profile it is most similar
// to by each part alone (lexical: highest mean PMI; syntactic: highest
// syntactic similarity; pragmatic: highest pragmatic similarity) and by
// all three (highest style similarity, the mean of the parts), and counts
// how often that is the chunk's voice.
func Classify(ctx context.Context, cfg ClassifyConfig) (*ClassifyResult, error) {
	if cfg.Split == "" {
		cfg.Split = "test"
	}
	if cfg.ChunkWords <= 0 {
		cfg.ChunkWords = 100
	}
	if cfg.PerVoice <= 0 {
		cfg.PerVoice = 50
	}
	set := cfg.Scorer.Set
	voices, err := voiceNames(cfg.Corpus)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, p := range set.Characters {
		idx[p.Name] = i
	}
	for _, v := range voices {
		if _, ok := idx[v]; !ok {
			return nil, fmt.Errorf("the profiles have no character %q (a voice of %s)", v, cfg.Corpus)
		}
	}
	type item struct {
		voice int
		text  string
	}
	var items []item
	for vi, v := range voices {
		rows, err := readVoice(cfg.Corpus, v, cfg.Split)
		if err != nil {
			return nil, err
		}
		var docs []string
		var texts [][]string
		at := map[string]int{}
		for _, r := range rows {
			i, ok := at[r.Doc]
			if !ok {
				i = len(docs)
				at[r.Doc] = i
				docs = append(docs, r.Doc)
				texts = append(texts, nil)
			}
			texts[i] = append(texts[i], r.Text)
		}
		var chunks []string
		for _, t := range texts {
			chunks = append(chunks, Chunks(strings.Join(t, " "), cfg.ChunkWords)...)
		}
		for _, c := range sample(chunks, cfg.PerVoice) {
			items = append(items, item{vi, c})
		}
	}
	res := &ClassifyResult{Voices: voices, Accuracy: map[string]float64{}, PerVoice: map[string]map[string]float64{}}
	res.Confusion = make([][]int, len(voices))
	for i := range res.Confusion {
		res.Confusion[i] = make([]int, len(voices))
	}
	parts := ClassifyParts
	if set.Pragmatic == nil || cfg.Scorer.Embedder == nil {
		parts = []string{"lexical", "syntactic", "all"}
	}
	correct := map[string][]int{}
	count := make([]int, len(voices))
	for _, p := range parts {
		correct[p] = make([]int, len(voices))
	}
	for n, it := range items {
		f, err := cfg.Scorer.Features(ctx, it.text)
		if err != nil {
			return nil, fmt.Errorf("%s chunk %q: %v", voices[it.voice], trim(it.text, 60), err)
		}
		res.Words += len(strings.Fields(it.text))
		best := map[string]int{}
		bestV := map[string]float64{}
		for _, p := range parts {
			bestV[p] = math.Inf(-1)
		}
		for _, v := range voices {
			ps := cfg.Scorer.Parts(f, set.Characters[idx[v]])
			vals := map[string]float64{"lexical": ps.MeanPMI, "syntactic": ps.Syntactic, "pragmatic": ps.Pragmatic, "all": ps.Style}
			for _, p := range parts {
				if vals[p] > bestV[p] {
					bestV[p], best[p] = vals[p], idx[v]
				}
			}
		}
		count[it.voice]++
		for _, p := range parts {
			if set.Characters[best[p]].Name == voices[it.voice] {
				correct[p][it.voice]++
			}
		}
		pred := 0
		for i, v := range voices {
			if idx[v] == best["all"] {
				pred = i
			}
		}
		res.Confusion[it.voice][pred]++
		if cfg.Progress != nil {
			cfg.Progress(n+1, len(items))
		}
	}
	res.Chunks = len(items)
	for _, p := range parts {
		tot := 0
		res.PerVoice[p] = map[string]float64{}
		for i, v := range voices {
			tot += correct[p][i]
			if count[i] > 0 {
				res.PerVoice[p][v] = float64(correct[p][i]) / float64(count[i])
			}
		}
		res.Accuracy[p] = float64(tot) / float64(max(1, len(items)))
	}
	return res, nil
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
