package pretrain

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/safetensors"
	"github.com/masque-ai/masque/tokenizer"
	"github.com/masque-ai/masque/train"
)

// TestLossFalls trains the tiny preset briefly: the training loss and every
// voice's validation loss fall, the cosine ends on the final rate, and the
// output folder loads with masque with the trained weights' logits.
func TestLossFalls(t *testing.T) {
	f := newFixture(t, 60)
	cfg := f.tinyConfig("out")
	cfg.Steps, cfg.LR, cfg.MinLR, cfg.EvalEvery = 40, 1e-2, 1e-3, 10
	cfg.DType = "bf16"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 40 || res.Interrupted {
		t.Fatalf("result %+v", res)
	}
	st := loadRunJSON(t, cfg.OutDir)
	h := st.History
	first, last := mean(h[:5], func(p train.Point) float64 { return p.TrainLoss }), mean(h[len(h)-5:], func(p train.Point) float64 { return p.TrainLoss })
	if !(last < first-0.5) {
		t.Errorf("train loss did not fall: %.3f → %.3f", first, last)
	}
	if got := h[len(h)-1].LR; math.Abs(got-cfg.MinLR) > 1e-12 {
		t.Errorf("last step's learning rate %g, want the final rate %g", got, cfg.MinLR)
	}
	if got := h[cfg.Warmup].LR; math.Abs(got-cfg.LR) > 1e-12 {
		t.Errorf("first step after the warm-up has rate %g, want the peak %g", got, cfg.LR)
	}
	var evals []train.Point
	for _, p := range h {
		if p.EvalGroups != nil {
			evals = append(evals, p)
		}
	}
	if len(evals) != 4 {
		t.Fatalf("%d evaluations, want 4", len(evals))
	}
	for _, v := range []string{"plain", "olde"} {
		a, b := evals[0].EvalGroups[v], evals[len(evals)-1].EvalGroups[v]
		if !(b < a) {
			t.Errorf("voice %s: validation loss %.3f → %.3f did not fall", v, a, b)
		}
	}
	if res.EvalLoss["plain"] != evals[len(evals)-1].EvalGroups["plain"] {
		t.Errorf("result's eval loss %v differs from the history's", res.EvalLoss)
	}
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "run.json", "loss.svg"} {
		if _, err := os.Stat(filepath.Join(cfg.OutDir, name)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(cfg.OutDir, "loss.svg"))
	if !bytes.Contains(svg, []byte(">olde</text>")) || !bytes.Contains(svg, []byte(">plain</text>")) {
		t.Errorf("loss.svg has no per-voice curves")
	}
	checkOutputLoads(t, cfg)
}

// checkOutputLoads opens the written folder with checkpoint.Open and
// compares its logits with those of the trained float32 weights (the
// checkpoint's) rounded to BF16.
func checkOutputLoads(t *testing.T, cfg Config) {
	t.Helper()
	ck, err := checkpoint.Open(cfg.OutDir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m := ck.Model
	if !m.Config.Tied || m.Config.Vocab != 515 || m.Config.MaxSeq != cfg.SeqLen || !m.Config.IsEOS(514) || !m.Config.IsEOS(512) {
		t.Errorf("loaded config %+v", m.Config)
	}
	if ck.Tokenizer == nil || !ck.HasTemplate {
		t.Fatalf("the output has no tokenizer or no chat template")
	}
	// The reference: the trained float32 weights, rounded to bf16.
	ref, err := Init(m.Config, 99, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := safetensors.Open(filepath.Join(Checkpoint(cfg.OutDir), "params.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	net, err := train.New(ref, train.Options{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range net.Params() {
		tt, ok := pf.Tensor(p.Name)
		if !ok {
			t.Fatalf("checkpoint lacks %s", p.Name)
		}
		v, err := tt.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			p.Data[i] = quant.BF16ToF32(quant.F32ToBF16(x))
		}
		p.Changed()
	}
	ids := ck.Tokenizer.Encode("<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\nthe cat", false)
	want, err := net.Logits(ids)
	if err != nil {
		t.Fatal(err)
	}
	m.K = kernels.ExactBF16(kernels.Default())
	got, err := m.Forward(m.NewCache(len(ids)), ids, true)
	if err != nil {
		t.Fatal(err)
	}
	var maxd, maxv float64
	for i := range want {
		maxd = math.Max(maxd, math.Abs(float64(got[i]-want[i])))
		maxv = math.Max(maxv, math.Abs(float64(want[i])))
	}
	if maxd > 1e-4*math.Max(1, maxv) {
		t.Errorf("logits of the saved model differ from the trained weights' by %g (max |logit| %g)", maxd, maxv)
	}
	t.Logf("saved bf16 model vs trained weights rounded to bf16: max |Δlogit| %.3g (max |logit| %.3g)", maxd, maxv)
}

func mean(ps []train.Point, f func(train.Point) float64) float64 {
	s := 0.0
	for _, p := range ps {
		s += f(p)
	}
	return s / float64(len(ps))
}

type runJSON struct {
	History  []train.Point `json:"history"`
	Finished bool          `json:"finished"`
	Steps    int           `json:"steps_done"`
}

func loadRunJSON(t *testing.T, dir string) runJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r runJSON
	if err := jsonUnmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeterminism: the same seed and data give the same weights bit for
// bit; another seed gives others.
func TestDeterminism(t *testing.T) {
	f := newFixture(t, 20)
	run := func(out string, seed uint64) []byte {
		cfg := f.tinyConfig(out)
		cfg.Steps, cfg.Seed = 4, seed
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(cfg.OutDir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := run("a", 3), run("b", 3), run("c", 4)
	if !bytes.Equal(a, b) {
		t.Errorf("two runs with the same seed wrote different weights")
	}
	if bytes.Equal(a, c) {
		t.Errorf("runs with different seeds wrote the same weights")
	}
}

// TestResumeAfterKill kills a run with SIGKILL after its checkpoint at step
// 2, resumes it, and compares the weights with an uninterrupted run's:
// they must be equal bit for bit.
func TestResumeAfterKill(t *testing.T) {
	if os.Getenv("PRETRAIN_CHILD_OUT") != "" {
		return // in the child, TestChild does the work
	}
	f := newFixture(t, 20)
	full := f.tinyConfig("full")
	if _, err := Run(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	killed := f.tinyConfig("killed")
	marker := filepath.Join(f.root, "at-step-3")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PRETRAIN_CHILD_OUT="+killed.OutDir, "PRETRAIN_CHILD_CORPUS="+f.corpus,
		"PRETRAIN_CHILD_TOK="+f.tok, "PRETRAIN_CHILD_MARKER="+marker)
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	must(t, cmd.Start())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child never reached step 3:\n%s", outBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed.OutDir, "model.safetensors")); err == nil {
		t.Fatalf("the killed run wrote a model")
	}
	// Without --resume the checkpoint is refused.
	if _, err := Run(context.Background(), killed); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Fatalf("a fresh run over a checkpoint: %v", err)
	}
	killed.Resume = true
	res, err := Run(context.Background(), killed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != full.Steps {
		t.Fatalf("resumed run ended at step %d", res.Steps)
	}
	a, _ := os.ReadFile(filepath.Join(full.OutDir, "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(killed.OutDir, "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("resumed weights differ from the uninterrupted run's")
	}
	ra, rb := loadRunJSON(t, full.OutDir), loadRunJSON(t, killed.OutDir)
	if len(ra.History) != len(rb.History) {
		t.Fatalf("history lengths %d vs %d", len(ra.History), len(rb.History))
	}
	for i := range ra.History {
		if ra.History[i].TrainLoss != rb.History[i].TrainLoss {
			t.Errorf("step %d: loss %v (uninterrupted) vs %v (resumed)", i+1, ra.History[i].TrainLoss, rb.History[i].TrainLoss)
		}
	}
}

// TestChild is the process TestResumeAfterKill kills: it trains and stops
// dead at step 3 (after the checkpoint of step 2), waiting for SIGKILL.
func TestChild(t *testing.T) {
	out := os.Getenv("PRETRAIN_CHILD_OUT")
	if out == "" {
		t.Skip("run by TestResumeAfterKill")
	}
	f := fixture{corpus: os.Getenv("PRETRAIN_CHILD_CORPUS"), tok: os.Getenv("PRETRAIN_CHILD_TOK"), root: filepath.Dir(out)}
	cfg := f.tinyConfig(filepath.Base(out))
	cfg.Progress = func(p Progress) {
		if p.Step == 3 {
			os.WriteFile(os.Getenv("PRETRAIN_CHILD_MARKER"), nil, 0o644)
			select {} // wait to be killed
		}
	}
	Run(context.Background(), cfg)
	t.Fatal("the child was not killed")
}

// TestInterruptResume: a cancelled run saves a checkpoint and records the
// interruption; resuming finishes with the uninterrupted weights.
func TestInterruptResume(t *testing.T) {
	f := newFixture(t, 20)
	full := f.tinyConfig("full")
	full.CheckpointEvery = 0
	if _, err := Run(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	cfg := f.tinyConfig("int")
	cfg.CheckpointEvery = 0
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(p Progress) {
		if p.Step == 5 {
			cancel()
		}
	}
	res, err := Run(ctx, cfg)
	if !errors.Is(err, ErrInterrupted) || res == nil || !res.Interrupted || res.Steps != 5 {
		t.Fatalf("interrupted run: %v, %+v", err, res)
	}
	if r := loadRunJSON(t, cfg.OutDir); r.Finished || r.Steps != 5 {
		t.Errorf("run.json of the interrupted run: %+v", r)
	}
	cfg.Progress, cfg.Resume = nil, true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(full.OutDir, "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(cfg.OutDir, "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("resumed weights differ from the uninterrupted run's")
	}
}

// TestDocumentMasking: a micro-batch of documents packed together gives
// each document the loss and gradients it has alone (no attention across
// document boundaries, positions restarting), on the documents the
// pipeline makes from the corpus.
func TestDocumentMasking(t *testing.T) {
	f := newFixture(t, 20)
	cfg := f.tinyConfig("x")
	must(t, cfg.fill())
	tok, err := tokenizer.Load(cfg.TokenizerDir)
	must(t, err)
	data, err := loadData(&cfg, tok)
	must(t, err)
	mc, err := newModelConfig(&cfg, tok)
	must(t, err)
	mc.MaxSeq = 4096
	m, err := Init(mc, 5, 0.2) // large weights: attention far from uniform
	must(t, err)
	net, err := train.New(m, train.Options{Full: true})
	must(t, err)
	batch := train.Batches(data.Train, 256, 1, 0)[0]
	if len(batch) < 3 {
		t.Fatalf("batch of %d documents", len(batch))
	}
	var alone train.Result
	grads := map[string][]float64{}
	for _, s := range batch {
		net.ZeroGrad()
		r, err := net.ForwardBackward([]train.Sequence{s}, 1)
		must(t, err)
		alone.Add(r)
		for _, p := range net.Params() {
			g := grads[p.Name]
			if g == nil {
				g = make([]float64, len(p.Grad))
				grads[p.Name] = g
			}
			for i, v := range p.Grad {
				g[i] += float64(v)
			}
		}
	}
	net.ZeroGrad()
	packed, err := net.ForwardBackward(batch, 1)
	must(t, err)
	if packed.Count != alone.Count || math.Abs(packed.LossSum-alone.LossSum) > 1e-4*alone.LossSum {
		t.Errorf("packed loss %v over %d targets, documents alone %v over %d", packed.LossSum, packed.Count, alone.LossSum, alone.Count)
	}
	var maxd, maxg float64
	for _, p := range net.Params() {
		for i, v := range p.Grad {
			maxd = math.Max(maxd, math.Abs(float64(v)-grads[p.Name][i]))
			maxg = math.Max(maxg, math.Abs(grads[p.Name][i]))
		}
	}
	if maxd > 1e-4*maxg {
		t.Errorf("packed gradients differ from the per-document ones by %g (max %g)", maxd, maxg)
	}
	// And the packed forward differs from running the concatenation as one
	// document, so the test can fail.
	var cat train.Sequence
	for _, s := range batch {
		cat.Tokens = append(cat.Tokens, s.Tokens...)
		cat.Targets = append(cat.Targets, s.Targets...)
	}
	one, err := net.Loss([]train.Sequence{cat})
	must(t, err)
	if math.Abs(one.LossSum-packed.LossSum) < 1e-3 {
		t.Errorf("one long document has the packed loss: the test cannot tell masking from none")
	}
}

// TestDocuments checks the two views: plain text starts with
// <|endoftext|> and carries loss on every token (ending on
// <|endoftext|>); chat rows carry loss on the assistant content and its
// <|im_end|> only; long documents are split with every target kept.
func TestDocuments(t *testing.T) {
	f := newFixture(t, 4)
	tok, err := tokenizer.Load(f.tok)
	must(t, err)
	enc, _, err := chatEncoder(tok, f.tok)
	must(t, err)
	dm := &docMaker{tok: tok, enc: enc, eot: 512, seqLen: 16, chatRatio: 0.5, seed: 1}
	s := dm.textDoc("the cat sat.")
	if s.Tokens[0] != 512 || s.Targets[len(s.Targets)-1] != 512 {
		t.Errorf("text document %v / %v", s.Tokens, s.Targets)
	}
	for i, tg := range s.Targets {
		if tg == train.IgnoreIndex || (i+1 < len(s.Tokens) && tg != s.Tokens[i+1]) {
			t.Fatalf("text targets %v", s.Targets)
		}
	}
	var st Stats
	long := dm.textDoc(strings.Repeat("word ", 30))
	pieces := dm.split(long, nil, &st)
	n := 0
	for _, p := range pieces {
		if len(p.Tokens) > 16 {
			t.Errorf("piece of %d tokens", len(p.Tokens))
		}
		n += len(p.Tokens)
	}
	if n != len(long.Tokens) || st.Targets != int64(len(long.Tokens)) {
		t.Errorf("split lost tokens: %d of %d, %d targets", n, len(long.Tokens), st.Targets)
	}
	// A chat row: loss only on the assistant content and <|im_end|>.
	var seqs []train.Sequence
	must(t, dm.readFile(filepath.Join(f.corpus, "plain", "train.jsonl"), "x", func(v string, s train.Sequence, chat bool) {
		if chat {
			seqs = append(seqs, s)
		}
	}))
	if len(seqs) == 0 {
		t.Fatal("no chat rows at ratio 0.5")
	}
	c := seqs[0]
	var trained []int
	for _, tg := range c.Targets {
		if tg != train.IgnoreIndex {
			trained = append(trained, tg)
		}
	}
	text := tok.Decode(trained, false)
	if !strings.HasSuffix(text, "<|im_end|>") || strings.Contains(text, "Say something") || strings.Contains(text, "You speak") {
		t.Errorf("chat row trains on %q", text)
	}
	// The ratio: all chat at 1, no chat at 0.
	for _, ratio := range []float64{0, 1} {
		dm.chatRatio = ratio
		chats, rows := 0, 0
		must(t, dm.readFile(filepath.Join(f.corpus, "plain", "train.jsonl"), "x", func(v string, s train.Sequence, chat bool) {
			rows++
			if chat {
				chats++
			}
		}))
		if float64(chats) != ratio*float64(rows) {
			t.Errorf("ratio %g: %d of %d rows chat", ratio, chats, rows)
		}
	}
}

// TestInit: the initial weights have the documented statistics.
func TestInit(t *testing.T) {
	sh := Presets["voices-small"]
	mc := sh.modelConfig(8192, 512, -1, []int{1})
	m, err := Init(mc, 7, 0.02)
	must(t, err)
	if c := CountParams(mc); c.Total != m.NumParams() || c.Total < 4_500_000 || c.Total > 5_500_000 {
		t.Errorf("voices-small: %d parameters (counted %+v)", m.NumParams(), c)
	}
	if mb := CountParams(Presets["voices-base"].modelConfig(8192, 512, -1, nil)); mb.Total < 11_000_000 || mb.Total > 14_000_000 {
		t.Errorf("voices-base: %d parameters", mb.Total)
	}
	stats := func(w *kernels.Matrix) (mean, std float64) {
		v := w.Float32s()
		for _, x := range v {
			mean += float64(x)
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v)))
	}
	resid := 0.02 / math.Sqrt(2*float64(mc.Layers))
	for _, tc := range []struct {
		name string
		w    *kernels.Matrix
		std  float64
	}{{"embed", m.Embed, 0.02}, {"q", m.Layers[0].Q, 0.02}, {"k", m.Layers[1].K, 0.02}, {"gate", m.Layers[2].Gate, 0.02},
		{"o", m.Layers[0].O, resid}, {"down", m.Layers[3].Down, resid}} {
		mu, sd := stats(tc.w)
		if math.Abs(mu) > 0.05*tc.std || math.Abs(sd-tc.std) > 0.02*tc.std {
			t.Errorf("%s: mean %g std %g, want 0 and %g", tc.name, mu, sd, tc.std)
		}
	}
	if m.LMHead != m.Embed {
		t.Errorf("the head is not tied to the embeddings")
	}
	for _, v := range [][]float32{m.Norm, m.Layers[0].AttnNorm, m.Layers[3].MLPNorm} {
		for _, x := range v {
			if x != 1 {
				t.Fatalf("a norm weight is %g", x)
			}
		}
	}
	m2, _ := Init(mc, 7, 0.02)
	m3, _ := Init(mc, 8, 0.02)
	if !bytes.Equal(m.Layers[1].Up.Data, m2.Layers[1].Up.Data) || bytes.Equal(m.Layers[1].Up.Data, m3.Layers[1].Up.Data) {
		t.Errorf("initialisation is not a function of the seed")
	}
	_ = model.Config{}
}

// TestBadInput: configuration and data errors are reported clearly.
func TestBadInput(t *testing.T) {
	f := newFixture(t, 4)
	base := f.tinyConfig("bad")
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no data", func(c *Config) { c.CorpusDir = "" }, "no training data"},
		{"no tokenizer", func(c *Config) { c.TokenizerDir = "" }, "no tokenizer"},
		{"preset", func(c *Config) { c.Preset = "huge" }, "unknown preset"},
		{"both", func(c *Config) { c.ModelConfig = "x.json" }, "not both"},
		{"seq", func(c *Config) { c.SeqLen = 1 }, "sequence length"},
		{"batch", func(c *Config) { c.BatchTokens = 10 }, "batch tokens"},
		{"lr", func(c *Config) { c.LR = -1 }, "learning rate"},
		{"minlr", func(c *Config) { c.MinLR = 1 }, "final learning rate"},
		{"ratio", func(c *Config) { c.ChatRatio = 2 }, "chat ratio"},
		{"beta", func(c *Config) { c.Beta2 = 1.5 }, "AdamW"},
		{"dtype", func(c *Config) { c.DType = "int4" }, "output dtype"},
		{"resume", func(c *Config) { c.Resume = true }, "no checkpoint"},
		{"missing corpus", func(c *Config) { c.CorpusDir = filepath.Join(f.root, "nope") }, "nope"},
		{"tokenizer folder", func(c *Config) { c.TokenizerDir = f.corpus }, "tokenizer.json"},
	} {
		c := base
		tc.edit(&c)
		_, err := Run(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	// A malformed row names its file and line.
	bad := filepath.Join(f.root, "bad.jsonl")
	must(t, os.WriteFile(bad, []byte("{\"text\":\"fine\"}\n{\"text\": 3}\n"), 0o644))
	c := base
	c.CorpusDir, c.DataFiles = "", []string{bad}
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("malformed row: %v", err)
	}
	must(t, os.WriteFile(bad, []byte("{\"id\":\"x\"}\n"), 0o644))
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") {
		t.Errorf("row without text: %v", err)
	}
	// A tokenizer without a chat template.
	tok2 := filepath.Join(f.root, "tok2")
	must(t, os.MkdirAll(tok2, 0o755))
	tj, _ := os.ReadFile(filepath.Join(f.tok, "tokenizer.json"))
	must(t, os.WriteFile(filepath.Join(tok2, "tokenizer.json"), tj, 0o644))
	must(t, os.WriteFile(filepath.Join(tok2, "tokenizer_config.json"), []byte(`{"eos_token":"<|im_end|>"}`), 0o644))
	c = base
	c.TokenizerDir = tok2
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "chat_template") {
		t.Errorf("tokenizer without a template: %v", err)
	}
	// A model config that is not a plain Llama, or too small a vocabulary.
	cfgFile := filepath.Join(f.root, "config.json")
	must(t, os.WriteFile(cfgFile, []byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":300,"tie_word_embeddings":true}`), 0o644))
	c = base
	c.Preset, c.ModelConfig = "", cfgFile
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "vocab_size 300") {
		t.Errorf("small vocabulary: %v", err)
	}
	// Text files work as data.
	txt := filepath.Join(f.root, "story.txt")
	must(t, os.WriteFile(txt, []byte("once upon a time\n<|endoftext|>\nthe end\n"), 0o644))
	c = base
	c.CorpusDir, c.DataFiles, c.Steps, c.OutDir = "", []string{txt}, 1, filepath.Join(f.root, "txt")
	if _, err := Run(context.Background(), c); err != nil {
		t.Errorf("text file data: %v", err)
	}
}

// TestModelConfigFile trains from a config.json instead of a preset.
func TestModelConfigFile(t *testing.T) {
	f := newFixture(t, 10)
	cfgFile := filepath.Join(f.root, "config.json")
	must(t, os.WriteFile(cfgFile, []byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":520,"tie_word_embeddings":false,"rms_norm_eps":1e-5}`), 0o644))
	c := f.tinyConfig("cf")
	c.Preset, c.ModelConfig, c.Steps = "", cfgFile, 2
	res, err := Run(context.Background(), c)
	must(t, err)
	if res.Params.Total != CountParams(model.Config{Hidden: 32, Intermediate: 64, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 16, Vocab: 520}).Total {
		t.Errorf("parameters %+v", res.Params)
	}
	ck, err := checkpoint.Open(c.OutDir, checkpoint.Options{})
	must(t, err)
	defer ck.Close()
	if ck.Model.Config.Tied || ck.Model.Config.Vocab != 520 {
		t.Errorf("loaded %+v", ck.Model.Config)
	}
}
