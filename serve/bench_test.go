package serve

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/bench"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

// benchModel returns a random-weight Qwen2.5-0.5B-shaped BF16 model folder:
// $MASQUE_BENCH_MODEL, or one written once under the temp folder (≈1 GB).
func benchModel(b *testing.B) string {
	if dir := os.Getenv("MASQUE_BENCH_MODEL"); dir != "" {
		return dir
	}
	dir := filepath.Join(os.TempDir(), "masque-bench-qwen2.5-0.5b-bf16")
	if err := randmodel.WriteOnce(dir, randmodel.Presets["qwen2.5-0.5b"], 1, 0.02, quant.BF16); err != nil {
		b.Fatal(err)
	}
	return dir
}

// channelMaskFile writes a mask pruning a quarter of every layer's FFN
// channels (those with c%4 == k) and returns its path.
func channelMaskFile(b *testing.B, m *model.Model, dir string, k int) string {
	mk := mask.New(m)
	cfg := &m.Config
	for l := 0; l < cfg.Layers; l++ {
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			w := m.Layers[l].Weight(p)
			bits := mask.NewBits(w.Rows, w.Cols)
			for c := k; c < cfg.Intermediate; c += 4 {
				if p == model.ProjDown {
					for r := 0; r < w.Rows; r++ {
						bits.Set(r, c, false)
					}
				} else {
					for x := 0; x < w.Cols; x++ {
						bits.Set(c, x, false)
					}
				}
			}
			mk.Set(mask.Key{Layer: l, Proj: p}, bits)
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("channels-%d.safetensors", k))
	if err := mk.Save(path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkServeThroughput compares the aggregate decoding rate of 16
// concurrent streaming sessions spread over 4 personas (the base, two FFN
// channel masks and a LoRA adapter, all over one copy of the weights) with
// the rate of a single session, through the HTTP server, on a random
// Qwen2.5-0.5B-shaped model. Run it with -benchtime 1x; it reports
// single_tok/s, aggregate_tok/s and their ratio (speedup).
func BenchmarkServeThroughput(b *testing.B) {
	dir := benchModel(b)
	ck, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	files := b.TempDir()
	ad, err := lora.New(ck.Model, lora.Config{Rank: 8, Alpha: 16, Targets: []model.Proj{model.ProjQ, model.ProjV}}, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := ad.Save(filepath.Join(files, "lora"), nil); err != nil {
		b.Fatal(err)
	}
	specs := []persona.Spec{
		{Name: "innkeeper", Description: "You are the innkeeper of the Prancing Pony."},
		{Name: "guard", Description: "You are a tired city guard.", Mask: channelMaskFile(b, ck.Model, files, 0)},
		{Name: "smith", Description: "You are a dwarven smith.", Mask: channelMaskFile(b, ck.Model, files, 1)},
		{Name: "bard", Description: "You are a wandering bard.", LoRA: filepath.Join(files, "lora")},
	}
	srv, err := New(Options{Base: ck, Personas: specs, Ctx: 256, MaxSeqs: 16, KVBytes: 2 << 30, MaxTokens: 256})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	const tokens = 64
	// session streams one greedy reply; it returns the completion tokens
	// and the arrival time of every content chunk.
	type run struct {
		tokens, prompt, cached int
		chunks                 []time.Time
	}
	session := func(name string, seed int) run {
		// Every session brings its own user message: only the chat
		// template and the persona's system prompt are shared, so the
		// prompt cache can reuse those and nothing more.
		msg := fmt.Sprintf("Good evening! I am traveller %d. What news from the road?", seed)
		body := jsonBytes(map[string]any{"model": name, "messages": []map[string]string{{"role": "user", "content": msg}},
			"max_tokens": tokens, "temperature": 0, "seed": seed, "stream": true, "stream_options": map[string]bool{"include_usage": true}})
		resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return run{}
		}
		defer resp.Body.Close()
		var r run
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			ev, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok || !strings.HasPrefix(ev, "{") {
				continue
			}
			var c struct {
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
				Usage *struct {
					CompletionTokens int `json:"completion_tokens"`
					PromptTokens     int `json:"prompt_tokens"`
					Details          struct {
						CachedTokens int `json:"cached_tokens"`
					} `json:"prompt_tokens_details"`
				} `json:"usage"`
			}
			if jsonUnmarshal(ev, &c) != nil {
				continue
			}
			if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
				r.chunks = append(r.chunks, time.Now())
			}
			if c.Usage != nil {
				r.tokens = c.Usage.CompletionTokens
				r.prompt, r.cached = c.Usage.PromptTokens, c.Usage.Details.CachedTokens
			}
		}
		if r.tokens == 0 || len(r.chunks) < 2 {
			b.Errorf("%s: %d tokens, %d chunks (status %d)", name, r.tokens, len(r.chunks), resp.StatusCode)
		}
		return r
	}
	// Warm-up: page the weights in, and let the prompt cache hold each
	// persona's system prompt as it would on a server that has been up.
	for k, sp := range specs {
		session(sp.Name, -1-k)
	}
	// Two rates each: end to end (completion tokens over the whole time,
	// prompt processing included) and decoding (streamed chunks per second
	// while every session is decoding). Each round measures a single
	// session and then the 16 together; the medians over the rounds are
	// reported, the speedups being medians of each round's ratio.
	var singles, singleDecodes, aggregates, aggregateDecodes, speedups, decodeSpeedups []float64
	for i := 0; i < b.N; i++ {
		var single, singleDecode, aggregate, aggregateDecode float64
		t0 := time.Now()
		r := session("innkeeper", 1000*(i+1))
		if len(r.chunks) < 2 {
			return
		}
		single = float64(r.tokens) / time.Since(t0).Seconds()
		first, last := r.chunks[0], r.chunks[len(r.chunks)-1]
		singleDecode = float64(len(r.chunks)-1) / last.Sub(first).Seconds()

		t0 = time.Now()
		var wg sync.WaitGroup
		runs := make([]run, 16)
		for s := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[s] = session(specs[s%4].Name, 1000*(i+1)+1+s)
			}()
		}
		wg.Wait()
		wall := time.Since(t0)
		total, prompt, cached := 0, 0, 0
		var from, to time.Time // the window in which all 16 sessions decode
		for k, r := range runs {
			total += r.tokens
			prompt += r.prompt
			cached += r.cached
			if len(r.chunks) < 2 {
				return
			}
			if k == 0 || r.chunks[0].After(from) {
				from = r.chunks[0]
			}
			if end := r.chunks[len(r.chunks)-1]; k == 0 || end.Before(to) {
				to = end
			}
		}
		aggregate = float64(total) / wall.Seconds()
		if n := 0; to.After(from) {
			for _, r := range runs {
				for _, c := range r.chunks {
					if !c.Before(from) && !c.After(to) {
						n++
					}
				}
			}
			aggregateDecode = float64(n-16) / to.Sub(from).Seconds()
		}
		b.Logf("round %d: single %.1f tok/s (decoding %.1f; prompt %d tokens, %d cached), 16 sessions %.1f tok/s (decoding %.1f; prompts %d tokens, %d cached)",
			i+1, single, singleDecode, r.prompt, r.cached, aggregate, aggregateDecode, prompt, cached)
		singles, singleDecodes = append(singles, single), append(singleDecodes, singleDecode)
		aggregates, aggregateDecodes = append(aggregates, aggregate), append(aggregateDecodes, aggregateDecode)
		speedups, decodeSpeedups = append(speedups, aggregate/single), append(decodeSpeedups, aggregateDecode/singleDecode)
	}
	b.ReportMetric(bench.Median(singles), "single_tok/s")
	b.ReportMetric(bench.Median(aggregates), "aggregate_tok/s")
	b.ReportMetric(bench.Median(speedups), "speedup")
	b.ReportMetric(bench.Median(singleDecodes), "single_decode_tok/s")
	b.ReportMetric(bench.Median(aggregateDecodes), "aggregate_decode_tok/s")
	b.ReportMetric(bench.Median(decodeSpeedups), "decode_speedup")
	var mem []string
	srv.mu.RLock()
	for _, s := range specs {
		mem = append(mem, fmt.Sprintf("%s %d KiB", s.Name, srv.personas[s.Name].bytes>>10))
	}
	srv.mu.RUnlock()
	b.Logf("base %d MiB; personas: %s", srv.base.bytes>>20, strings.Join(mem, ", "))
}
