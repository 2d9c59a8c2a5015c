package train

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/tokenizer"
)

var memorise = []string{
	"The purple dragon sang a song about the moon and cheese.",
	"Max the robot baked seven blue cakes for his friend Lily.",
	"Under the old bridge, a tiny frog counted the stars.",
}

func loadStories(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := model.LoadLlama2C(filepath.Join("..", "testdata", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadLlama2C(filepath.Join("..", "testdata", "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// lmSequence makes a next-token sequence predicting every token after the first.
func lmSequence(ids []int) Sequence {
	tg := make([]int, len(ids))
	for i := range tg {
		if i+1 < len(ids) {
			tg[i] = ids[i+1]
		} else {
			tg[i] = IgnoreIndex
		}
	}
	return Sequence{Tokens: ids[:len(ids):len(ids)], Targets: tg}
}

// greedy continues prompt with the argmax token n times.
func greedy(t testing.TB, m *model.Model, prompt []int, n int) []int {
	t.Helper()
	c := m.NewCache(0)
	logits, err := m.Forward(c, prompt, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for i := 0; i < n; i++ {
		best := 0
		for j, v := range logits {
			if v > logits[best] {
				best = j
			}
		}
		out = append(out, best)
		if logits, err = m.Forward(c, []int{best}, false); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestLearnsSentences fine-tunes stories260K (all parameters) on three
// sentences: the loss must fall near zero and greedy decoding from each
// sentence's first three tokens must reproduce the rest.
func TestLearnsSentences(t *testing.T) {
	m, tok := loadStories(t)
	var seqs []Sequence
	for _, s := range memorise {
		ids := tok.Encode(s, true) // BOS + text
		ids = append(ids, 2)       // EOS
		seqs = append(seqs, lmSequence(ids))
	}
	n, err := New(m, Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	before, err := n.Loss(seqs)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(n, Config{Steps: 60, LR: 1e-2, Schedule: Schedule{Kind: "cosine", Warmup: 5, MinRatio: 0.1}, ClipNorm: 1, BatchTokens: 4096, Seed: 1}, seqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	after, err := n.Loss(seqs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f → %.4f after %d steps", before.Mean(), after.Mean(), tr.State.Step)
	if after.Mean() > 0.05 {
		t.Errorf("loss after training %.4f, want < 0.05", after.Mean())
	}
	for _, s := range seqs {
		ids := s.Tokens
		got := greedy(t, m, ids[:3], len(ids)-3)
		if !slices.Equal(got, ids[3:]) {
			t.Errorf("greedy continuation %q, want %q", tok.Decode(got, false), tok.Decode(ids[3:], false))
		}
	}
}

// TestResumeMatchesUninterrupted runs 6 steps straight, and 6 steps
// interrupted after the 3rd (checkpoint on interrupt) and resumed in a fresh
// trainer from a freshly loaded model: the final weights must be identical.
func TestResumeMatchesUninterrupted(t *testing.T) {
	m0, tok := loadStories(t)
	_ = m0
	var seqs []Sequence
	for _, s := range append(memorise, "Once upon a time there was a girl.", "Tim liked his red ball very much.") {
		seqs = append(seqs, lmSequence(tok.Encode(s, true)))
	}
	cfg := Config{Steps: 6, LR: 3e-3, Schedule: Schedule{Kind: "linear", Warmup: 2}, ClipNorm: 1, BatchTokens: 40, Accum: 2, Seed: 7, WeightDecay: 0.01}
	run := func(dir string, stopAfter int) (*Trainer, error) {
		m, _ := loadStories(t)
		n, err := New(m, Options{Full: true})
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.CheckpointDir = dir
		c.CheckpointEvery = 2
		tr, err := NewTrainer(n, c, seqs, seqs[:2])
		if err != nil {
			t.Fatal(err)
		}
		if dir != "" && HasCheckpoint(dir) {
			if err := tr.LoadCheckpoint(dir); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err = tr.Run(ctx, func(p Progress) {
			if p.Step == stopAfter {
				cancel()
			}
		})
		return tr, err
	}
	straight, err := run("", -1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	if _, err := run(dir, 3); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v, want ErrInterrupted", err)
	}
	resumed, err := run(dir, -1)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.State.Step != 6 || len(resumed.State.History) != 6 {
		t.Fatalf("resumed run ended at step %d with %d history points", resumed.State.Step, len(resumed.State.History))
	}
	for i, p := range straight.Net.Params() {
		q := resumed.Net.Params()[i]
		if !slices.Equal(p.Data, q.Data) {
			t.Fatalf("%s differs between the uninterrupted and the resumed run", p.Name)
		}
	}
	for i := range straight.State.History {
		if straight.State.History[i].TrainLoss != resumed.State.History[i].TrainLoss {
			t.Errorf("step %d loss %v vs resumed %v", i+1, straight.State.History[i].TrainLoss, resumed.State.History[i].TrainLoss)
		}
	}
}
