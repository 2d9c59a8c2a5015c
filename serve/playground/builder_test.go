package playground_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/browsertest"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve"
)

// page drives one playground page in Chromium.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return p.eval(`(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); return e ? e.textContent : "<missing>"; })()`)
}

// shot writes a screenshot of the page to the test's artifact folder and
// checks that it shows something (dark text on the light page).
func (p *page) shot(name string) {
	p.t.Helper()
	data, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(90))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if dark, total := darkPixels(img); dark < 500 || dark > total/2 {
		p.t.Errorf("screenshot %s has %d dark pixels of %d: nothing rendered", name, dark, total)
	}
	path := filepath.Join(p.dir, name+".jpg")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if out := os.Getenv("MASQUE_SCREENSHOT_DIR"); out != "" {
		os.WriteFile(filepath.Join(out, p.t.Name()+"-"+name+".jpg"), data, 0o644)
	}
	p.t.Logf("screenshot %s (%v)", path, img.Bounds().Size())
}

func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); e.value = ` + strconv.Quote(v) + `; e.dispatchEvent(new Event("change")); return true; })()`
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return chromedp.Void{}, err
	}
}

// activeID is the id of the focused element.
func (p *page) activeID() string {
	return p.eval(`document.activeElement ? document.activeElement.id : ""`)
}

// cardPNG is a character card embedded in a small PNG, as SillyTavern
// writes them.
func cardPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(1, 1, color.RGBA{10, 20, 30, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	card := `{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Mira","description":"{{char}} is a ship's navigator who speaks in short sentences.",
"first_mes":"Wind's up, {{user}}.","mes_example":"<START>\n{{user}}: Where are we?\n{{char}}: Off the reef."}}`
	out, err := persona.EmbedCardPNG(b.Bytes(), []byte(card))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getPersona(t *testing.T, url, key, name string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/personas/"+name, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("GET persona %s: %d %v", name, resp.StatusCode, out)
	}
	return out
}

// TestPlaygroundBuildsPersonas drives the playground in headless Chromium
// on a keyless loopback server, with the keyboard where a user would:
// create a persona (Enter saves), edit it, chat with it (Enter sends),
// compare it with a masked persona side by side, and import a PNG
// character card by dropping it; the kinds, sizes, per-reply tokens/s and
// prompt cache hits and the live server totals show. Screenshots of every
// stage go to the test's artifact folder (go test -artifacts keeps them)
// and to $MASQUE_SCREENSHOT_DIR when set.
func TestPlaygroundBuildsPersonas(t *testing.T) {
	ctx := browsertest.Context(t, "the playground", 1280, 860, 150*time.Second)
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	dir := t.TempDir()
	srv, err := serve.New(serve.Options{Base: ck, LocalAdmin: true, Ctx: 256, MaxSeqs: 4, KVBytes: 32 << 20, Personas: []persona.Spec{
		{Name: "dense", Description: "You are a storyteller."},
		{Name: "pruned", Description: "You are a storyteller.", Mask: channelMask(t, ck.Model, dir)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler()) // 127.0.0.1, no keys
	defer ts.Close()
	p := &page{t: t, ctx: ctx, dir: t.ArtifactDir()}

	// The persona list: kinds and sizes.
	p.do("open", chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#persona-list li[data-id="pruned"]`)))
	if k := p.text(`li[data-id="dense"] .badge`); k != "prompt" {
		t.Errorf("dense persona's kind shows %q", k)
	}
	if k := p.text(`li[data-id="pruned"] .badge`); k != "mask" {
		t.Errorf("pruned persona's kind shows %q", k)
	}
	if s := p.text(`li[data-id="pruned"] .size`); !strings.HasSuffix(s, "B") {
		t.Errorf("pruned persona's size shows %q", s)
	}
	if s := p.text(`li[data-id="dense"] .size`); s != "shared base" {
		t.Errorf("dense persona's size shows %q", s)
	}
	// The mask persona's method and sparsity, from the mask file's
	// metadata, as /v1/personas gives them.
	mk, err := mask.Load(filepath.Join(dir, "pruned.mask.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := getPersona(t, ts.URL, "", "pruned")["mask"].(map[string]any)
	if pm["method"] != "wanda" || pm["granularity"] != "ffn-channels" || pm["target_sparsity"] != 1.0/3 || math.Abs(pm["sparsity"].(float64)-(1-mk.Density())) > 1e-12 {
		t.Errorf("the pruned persona's mask: %v (density %v)", pm, mk.Density())
	}
	if s, want := p.text(`li[data-id="pruned"] .mask-info`), fmt.Sprintf("wanda · ffn-channels · %.1f%% pruned", 100*(1-mk.Density())); s != want {
		t.Errorf("pruned persona's mask shows %q, want %q", s, want)
	}
	if n := p.eval(`String(document.querySelectorAll('li[data-id="dense"] .mask-info').length)`); n != "0" {
		t.Errorf("the dense persona shows %s mask lines", n)
	}

	// Create: the editor takes the focus; Enter in a field saves.
	p.do("new persona", chromedp.Click(chromedp.CSS(`#new-persona`)), chromedp.WaitVisible(chromedp.CSS(`#editor`)))
	if id := p.activeID(); id != "ed-name" {
		t.Errorf("the editor opened with the focus on %q, not the name", id)
	}
	p.do("fill in",
		chromedp.SendKeys(chromedp.CSS(`#ed-name`), "captain"),
		chromedp.SendKeys(chromedp.CSS(`#ed-description`), "You are {{char}}, a gruff sea captain."),
		chromedp.SendKeys(chromedp.CSS(`#ed-greeting`), "Ahoy."),
		chromedp.SendKeys(chromedp.CSS(`#ed-temperature`), "0.7"),
		chromedp.SendKeys(chromedp.CSS(`#ed-max-tokens`), "40"))
	p.shot("1-create")
	p.do("save with Enter", chromedp.SendKeys(chromedp.CSS(`#ed-greeting`), "\r"),
		chromedp.WaitVisible(chromedp.CSS(`#persona-list li[data-id="captain"]`)))
	got := getPersona(t, ts.URL, "", "captain")
	if got["kind"] != "base" || got["greeting"] != "Ahoy." || got["temperature"] != 0.7 || got["max_tokens"] != 40.0 {
		t.Errorf("created persona %v", got)
	}

	// Edit: the description changes, the rest stays.
	p.do("edit", chromedp.Click(chromedp.CSS(`li[data-id="captain"] button[aria-label="edit captain"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#editor`)))
	if v := p.eval(`document.getElementById("ed-description").value`); v != "You are {{char}}, a gruff sea captain." {
		t.Errorf("the editor shows the description %q (macros kept?)", v)
	}
	p.do("change", setValue("#ed-description", "You are a kind sea captain."), chromedp.Click(chromedp.CSS(`#ed-save`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#editor`)))
	got = getPersona(t, ts.URL, "", "captain")
	if got["description"] != "You are a kind sea captain." || got["greeting"] != "Ahoy." || got["temperature"] != 0.7 {
		t.Errorf("edited persona %v", got)
	}

	// Chat with it: Enter sends; the answer is what the API answers.
	p.do("chat",
		setValue("#temperature", "0"), setValue("#max-tokens", "16"), setValue("#seed", "5"),
		chromedp.Click(chromedp.CSS(`li[data-id="captain"] button[aria-label="chat with captain"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#log-a .msg.assistant`))) // the greeting
	if id := p.activeID(); id != "input" {
		t.Errorf("after choosing a persona the focus is on %q, not the message box", id)
	}
	p.do("send", chromedp.SendKeys(chromedp.CSS(`#input`), "Tell me about the sea.\r"),
		chromedp.WaitReady(chromedp.CSS(`#stats-a[data-done="1"]`)))
	answer := p.text(`#log-a .msg.assistant:last-child`)
	want := apiAnswer(t, ts.URL, "captain", []map[string]string{{"role": "assistant", "content": "Ahoy."}, {"role": "user", "content": "Tell me about the sea."}})
	if strings.TrimSpace(answer) != strings.TrimSpace(want) {
		t.Errorf("the pane shows %q, the API answers %q", answer, want)
	}
	if s := p.text(`#stats-a`); !strings.Contains(s, "tok/s") || !strings.Contains(s, "cache ") {
		t.Errorf("reply stats %q", s)
	}
	p.shot("2-chat")

	// Compare with the masked persona, side by side, on the same message;
	// the captain's second turn reuses its first from the prompt cache.
	p.do("compare", chromedp.Click(chromedp.CSS(`li[data-id="pruned"] button[aria-label="compare with pruned side by side"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pane-b`)),
		chromedp.SendKeys(chromedp.CSS(`#input`), "And the wind?\r"),
		chromedp.WaitReady(chromedp.CSS(`#stats-a[data-done="1"]`)),
		chromedp.WaitReady(chromedp.CSS(`#stats-b[data-done="1"]`)))
	if a, b := p.text(`#log-a .msg.assistant:last-child`), p.text(`#log-b .msg.assistant:last-child`); a == "" || b == "" {
		t.Errorf("side by side answers %q / %q", a, b)
	}
	if k := p.text(`#kind-b`); !strings.HasPrefix(k, "mask · wanda · ffn-channels · ") || !strings.Contains(k, "% pruned · ") {
		t.Errorf("pane b's kind shows %q", k)
	}
	if c, _ := strconv.Atoi(p.eval(`document.getElementById("stats-a").dataset.cached || "0"`)); c == 0 {
		t.Errorf("the captain's second turn took no prompt tokens from the cache: %q", p.text(`#stats-a`))
	}
	p.do("live totals", chromedp.WaitReady(chromedp.CSS(`#live[data-cache-hits]:not([data-cache-hits="0"])`)))
	if s := p.text(`#live`); !strings.Contains(s, "tok/s") || !strings.Contains(s, "cache hits") {
		t.Errorf("live stats %q", s)
	}
	p.shot("3-compare")

	// Import a PNG card by dropping it on the drop zone.
	b64 := base64.StdEncoding.EncodeToString(cardPNG(t))
	drop := fmt.Sprintf(`(() => {
		const bin = atob(%q); const bytes = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
		const dt = new DataTransfer(); dt.items.add(new File([bytes], "mira.png", {type: "image/png"}));
		const zone = document.getElementById("dropzone");
		zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
		zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
		return "dropped"; })()`, b64)
	if r := p.eval(drop); r != "dropped" {
		t.Fatal(r)
	}
	p.do("card import", chromedp.WaitVisible(chromedp.CSS(`#persona-list li[data-id="mira"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#log-a .msg.assistant`)))
	if s := p.text(`#status`); !strings.Contains(s, "imported mira") {
		t.Errorf("status after the drop: %q", s)
	}
	if g := p.text(`#log-a .msg.assistant`); g != "Wind's up, User." {
		t.Errorf("the card's greeting shows %q", g)
	}
	got = getPersona(t, ts.URL, "", "mira")
	if !strings.Contains(fmt.Sprint(got["system_prompt"]), "Off the reef.") {
		t.Errorf("the card's example dialogue is not in the prompt: %v", got)
	}
	p.shot("4-card")

	// With the sampling fields left empty, the persona's own defaults
	// apply: the captain answers in at most its 40 tokens.
	p.do("persona defaults", setValue("#max-tokens", ""), setValue("#temperature", ""),
		chromedp.Click(chromedp.CSS(`li[data-id="captain"] button[aria-label="chat with captain"]`)),
		chromedp.SendKeys(chromedp.CSS(`#input`), "Sing.\r"),
		chromedp.WaitReady(chromedp.CSS(`#stats-a[data-done="1"]`)))
	stats := p.text(`#stats-a`)
	n, err := strconv.Atoi(strings.Fields(stats + " x")[0])
	if err != nil || n < 1 || n > 40 {
		t.Errorf("with the persona's max_tokens 40: stats %q", stats)
	}
}

// apiAnswer is the API's greedy answer (seed 5, 16 tokens), as the page
// asks for it.
func apiAnswer(t *testing.T, url, model string, msgs []map[string]string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "messages": msgs, "temperature": 0, "max_tokens": 16, "seed": 5})
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Choices) != 1 {
		t.Fatalf("API answer: %+v", out)
	}
	return out.Choices[0].Message.Content
}

// TestPlaygroundAdminKey: on a server with keys, persona management from
// the page needs the admin key that the user enters; with the API key
// alone the editor shows the server's refusal.
func TestPlaygroundAdminKey(t *testing.T) {
	ctx := browsertest.Context(t, "the playground", 1100, 760, 90*time.Second)
	ck, err := checkpoint.Open("", checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	const key, admin = "sk-user", "sk-admin"
	srv, err := serve.New(serve.Options{Base: ck, APIKey: key, AdminKey: admin, LocalAdmin: true, Ctx: 256, MaxSeqs: 2, KVBytes: 16 << 20,
		Personas: []persona.Spec{{Name: "dense", Description: "You are a storyteller."}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	p := &page{t: t, ctx: ctx, dir: t.ArtifactDir()}
	p.do("open", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#apikey`)),
		setValue("#apikey", key), chromedp.WaitVisible(chromedp.CSS(`#persona-list li[data-id="dense"]`)),
		chromedp.Click(chromedp.CSS(`#new-persona`)), chromedp.WaitVisible(chromedp.CSS(`#editor`)),
		chromedp.SendKeys(chromedp.CSS(`#ed-name`), "smith"),
		chromedp.SendKeys(chromedp.CSS(`#ed-description`), "A blacksmith."),
		chromedp.SendKeys(chromedp.CSS(`#ed-name`), "\r"),
		chromedp.WaitReady(chromedp.CSS(`#ed-status:not(:empty):not([data-x])`)))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.text(`#ed-status`), "admin key") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if s := p.text(`#ed-status`); !strings.Contains(s, "401") || !strings.Contains(s, "admin key") {
		t.Errorf("saving without the admin key shows %q", s)
	}
	p.shot("admin-refused")
	p.do("with the admin key", setValue("#adminkey", admin), chromedp.Click(chromedp.CSS(`#ed-save`)),
		chromedp.WaitVisible(chromedp.CSS(`#persona-list li[data-id="smith"]`)))
	if got := getPersona(t, ts.URL, key, "smith"); got["description"] != "A blacksmith." {
		t.Errorf("persona made with the admin key: %v", got)
	}
}
