package playground_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masque-ai/masque/internal/browsertest"

	"github.com/chromedp/chromedp"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

// channelMask writes an FFN channel mask for m (every third channel
// pruned) and returns its path.
func channelMask(t *testing.T, m *model.Model, dir string) string {
	mk := mask.New(m)
	cfg := &m.Config
	for l := 0; l < cfg.Layers; l++ {
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			w := m.Layers[l].Weight(p)
			b := mask.NewBits(w.Rows, w.Cols)
			for c := 0; c < cfg.Intermediate; c += 3 {
				if p == model.ProjDown {
					for r := 0; r < w.Rows; r++ {
						b.Set(r, c, false)
					}
				} else {
					for k := 0; k < w.Cols; k++ {
						b.Set(c, k, false)
					}
				}
			}
			mk.Set(mask.Key{Layer: l, Proj: p}, b)
		}
	}
	mk.Info = mask.Info{Method: "wanda", Sparsity: 1.0 / 3, Granularity: "ffn-channels", Targets: "mlp"}
	path := filepath.Join(dir, "pruned.mask.safetensors")
	if err := mk.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPlaygroundInChromium drives the playground in headless Chromium over
// the DevTools protocol: it enters the API key, puts a dense persona and a
// pruned one side by side, sends a message, waits for both streamed
// answers, checks them against the API and checks a screenshot of the
// answer.
func TestPlaygroundInChromium(t *testing.T) {
	bin := browsertest.Find()
	if bin == "" {
		t.Skip("chromium not found (install Debian's chromium package, or set MASQUE_CHROMIUM): skipping the browser test of the playground")
	}
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	dir := t.TempDir()
	const key = "sk-browser"
	srv, err := serve.New(serve.Options{Base: ck, APIKey: key, Ctx: 256, MaxSeqs: 4, KVBytes: 32 << 20, Personas: []persona.Spec{
		{Name: "dense", Description: "You are a storyteller.", Greeting: "Hello, traveller."},
		{Name: "pruned", Description: "You are a storyteller.", Mask: channelMask(t, ck.Model, dir)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler()) // 127.0.0.1
	defer ts.Close()

	// What the API answers for the same conversation, greedily.
	want := map[string]string{}
	for _, p := range []string{"dense", "pruned"} {
		msgs := []map[string]string{{"role": "user", "content": "Tell me about the sea."}}
		if p == "dense" {
			msgs = append([]map[string]string{{"role": "assistant", "content": "Hello, traveller."}}, msgs...)
		}
		body, _ := json.Marshal(map[string]any{"model": p, "messages": msgs, "temperature": 0, "max_tokens": 24, "seed": 5})
		req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if len(out.Choices) != 1 || out.Choices[0].Message.Content == "" {
			t.Fatalf("API answer for %s: %+v", p, out)
		}
		want[p] = out.Choices[0].Message.Content
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTime()

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	setValue := func(sel, v string) chromedp.Action[chromedp.Void] {
		js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); e.value = ` + strconv.Quote(v) + `; e.dispatchEvent(new Event("change")); return true; })()`
		return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](js)(ctx, t)
			return chromedp.Void{}, err
		}
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(css(`#apikey`)),
		setValue("#apikey", key),
		chromedp.WaitReady(css(`#persona-b option[value="pruned"]`)),
		setValue("#temperature", "0"),
		setValue("#max-tokens", "24"),
		setValue("#seed", "5"),
		chromedp.Click(css(`#compare`)),
		chromedp.WaitVisible(css(`#pane-b`)),
		setValue("#persona-a", "dense"),
		setValue("#persona-b", "pruned"),
		chromedp.WaitVisible(css(`#log-a .msg.assistant`)), // the dense persona's greeting
		chromedp.SendKeys(css(`#input`), "Tell me about the sea."),
		chromedp.Click(css(`#send`)),
		chromedp.WaitReady(css(`#stats-a[data-done="1"]`)),
		chromedp.WaitReady(css(`#stats-b[data-done="1"]`)),
	)
	if err != nil {
		t.Fatalf("driving chromium: %v", err)
	}
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	greeting := text(`#log-a .msg.assistant:first-child`)
	textA, textB := text(`#log-a .msg.assistant:last-child`), text(`#log-b .msg.assistant:last-child`)
	statsA, statsB := text(`#stats-a`), text(`#stats-b`)
	shot, err := chromedp.Run(ctx, chromedp.Screenshot(css(`#log-a .msg.assistant:last-child`)))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("page screenshot: %v", err)
	}
	if out := os.Getenv("MASQUE_SCREENSHOT_DIR"); out != "" {
		os.WriteFile(filepath.Join(out, "playground.jpg"), page, 0o644)
		os.WriteFile(filepath.Join(out, "answer.png"), shot, 0o644)
	}
	if greeting != "Hello, traveller." {
		t.Errorf("greeting %q", greeting)
	}
	if strings.TrimSpace(textA) != strings.TrimSpace(want["dense"]) {
		t.Errorf("dense pane shows %q, the API answers %q", textA, want["dense"])
	}
	if strings.TrimSpace(textB) != strings.TrimSpace(want["pruned"]) {
		t.Errorf("pruned pane shows %q, the API answers %q", textB, want["pruned"])
	}
	rate := regexp.MustCompile(`^(\d+) tokens · ([0-9.]+) tok/s · first token`)
	for name, s := range map[string]string{"a": statsA, "b": statsB} {
		m := rate.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("pane %s stats %q lack tokens/s", name, s)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n < 2 {
			t.Errorf("pane %s: %d tokens", name, n)
		}
	}
	// The screenshot of the answer bubble shows text: dark glyph pixels on
	// the light bubble.
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if dark, total := darkPixels(img); dark < 30 || dark > total/2 {
		t.Errorf("the answer's screenshot has %d dark pixels of %d: no text rendered", dark, total)
	} else {
		t.Logf("answer screenshot %v: %d dark pixels of %d; stats %q / %q", img.Bounds().Size(), dark, total, statsA, statsB)
	}
}

// darkPixels counts pixels darker than mid-grey.
func darkPixels(img image.Image) (dark, total int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0x6000 {
				dark++
			}
			total++
		}
	}
	return dark, total
}
