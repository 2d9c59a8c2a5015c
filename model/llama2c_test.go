package model

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

type storiesGolden struct {
	Cases []struct {
		Name         string `json:"name"`
		Prompt       string `json:"prompt"`
		PromptIDs    []int  `json:"prompt_ids"`
		GeneratedIDs []int  `json:"generated_ids"`
		Logits       []struct {
			Pos        int       `json:"pos"`
			InputToken int       `json:"input_token"`
			Logits     []float64 `json:"logits"`
		} `json:"logits"`
	} `json:"cases"`
}

func loadStories(t testing.TB) (*Model, *storiesGolden) {
	t.Helper()
	m, err := LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../testdata/stories260K/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g storiesGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return m, &g
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestStoriesGolden checks greedy generation and logits against llama2.c's run.c.
func TestStoriesGolden(t *testing.T) {
	m, g := loadStories(t)
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			c := m.NewCache(0)
			// The whole prompt in one batched pass, logits for every position.
			logits, err := m.Forward(c, tc.PromptIDs, true)
			if err != nil {
				t.Fatal(err)
			}
			V := m.Config.Vocab
			all := make([][]float32, 0, len(tc.PromptIDs)+len(tc.GeneratedIDs))
			for i := range tc.PromptIDs {
				all = append(all, logits[i*V:(i+1)*V])
			}
			var got []int
			next := argmax(all[len(all)-1])
			for len(got) < len(tc.GeneratedIDs) {
				got = append(got, next)
				if len(got) == len(tc.GeneratedIDs) {
					break
				}
				l, err := m.Forward(c, []int{next}, false)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, l)
				next = argmax(l)
			}
			for i := range got {
				if got[i] != tc.GeneratedIDs[i] {
					t.Fatalf("token %d: got %d, want %d\n got %v\nwant %v", i, got[i], tc.GeneratedIDs[i], got, tc.GeneratedIDs)
				}
			}
			for _, lg := range tc.Logits {
				row := all[lg.Pos]
				for j, want := range lg.Logits {
					if d := math.Abs(float64(row[j]) - want); d > 1e-4 {
						t.Fatalf("pos %d logit %d: got %g want %g (diff %g)", lg.Pos, j, row[j], want, d)
					}
				}
			}
		})
	}
}
