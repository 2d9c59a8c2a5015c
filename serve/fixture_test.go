package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/quant"
)

// fixture is a server over the built-in stories260K model with personas of
// every kind, and the files behind them.
type fixture struct {
	ck      *checkpoint.Checkpoint
	dir     string // persona root
	srv     *Server
	ts      *httptest.Server
	channel *mask.Mask    // the "ranger" persona's FFN channel mask
	sparse  *mask.Mask    // the "oracle" persona's unstructured mask
	adapter *lora.Adapter // the "bard" persona's LoRA adapter
}

const (
	pirateSystem = "You are a pirate captain."
	testAPIKey   = "sk-test-user"
	testAdminKey = "sk-test-admin"
)

var (
	baseOnce sync.Once
	baseCk   *checkpoint.Checkpoint
	files    struct {
		dir                       string
		channel, sparse           *mask.Mask
		adapter                   *lora.Adapter
		channelBytes, sparseBytes int64
	}
)

// openBase opens stories260K once and writes the persona files once.
func openBase(t testing.TB) {
	t.Helper()
	baseOnce.Do(func() {
		ck, err := checkpoint.Open("", checkpoint.Options{})
		if err != nil {
			panic(err)
		}
		baseCk = ck
		m := ck.Model
		dir, err := os.MkdirTemp("", "masque-serve-test-")
		if err != nil {
			panic(err)
		}
		files.dir = dir
		cfg := &m.Config
		rng := rand.New(rand.NewPCG(1, 2))
		// FFN channel mask: a quarter of the channels of every layer.
		ch := mask.New(m)
		for l := 0; l < cfg.Layers; l++ {
			for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
				w := m.Layers[l].Weight(p)
				b := mask.NewBits(w.Rows, w.Cols)
				for c := 0; c < cfg.Intermediate; c++ {
					if (c+l)%4 != 0 {
						continue
					}
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
				ch.Set(mask.Key{Layer: l, Proj: p}, b)
			}
		}
		ch.Info = mask.Info{Method: "test", Granularity: "ffn-channels", Sparsity: 0.25}
		must(ch.Save(filepath.Join(dir, "ranger.mask.safetensors")))
		// Unstructured mask over the attention and up projections.
		sp := mask.New(m)
		for l := 0; l < cfg.Layers; l++ {
			for _, p := range []model.Proj{model.ProjQ, model.ProjO, model.ProjUp} {
				w := m.Layers[l].Weight(p)
				b := mask.NewBits(w.Rows, w.Cols)
				for r := 0; r < w.Rows; r++ {
					for c := 0; c < w.Cols; c++ {
						if rng.Float64() < 0.3 {
							b.Set(r, c, false)
						}
					}
				}
				sp.Set(mask.Key{Layer: l, Proj: p}, b)
			}
		}
		must(sp.Save(filepath.Join(dir, "oracle.mask.safetensors")))
		// LoRA adapter with random B, so that it changes the output.
		ad, err := lora.New(m, lora.Config{Rank: 4, Alpha: 8, Targets: []model.Proj{model.ProjQ, model.ProjV, model.ProjDown}}, 3)
		must(err)
		for _, p := range ad.All() {
			for i := range p.B {
				p.B[i] = float32(rng.NormFloat64()) * 0.05
			}
		}
		must(ad.Save(filepath.Join(dir, "bard"), nil))
		// A separate pruned model: the channel-masked model as GGUF.
		masked, err := mask.Masked(m, ch, nil)
		must(err)
		pruned := &checkpoint.Checkpoint{Model: masked, Tokenizer: ck.Tokenizer}
		must(pruned.SaveGGUF(filepath.Join(dir, "pruned.gguf"), quant.F32))
		// Reload what was written, as the server will see it.
		files.channel, err = mask.Load(filepath.Join(dir, "ranger.mask.safetensors"))
		must(err)
		files.sparse, err = mask.Load(filepath.Join(dir, "oracle.mask.safetensors"))
		must(err)
		files.adapter, err = lora.Load(filepath.Join(dir, "bard"))
		must(err)
	})
	if baseCk == nil {
		t.Fatal("opening the base model failed")
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// testPersonas are the fixture's personas: one of every kind.
func testPersonas() []persona.Spec {
	zero := 0.0
	return []persona.Spec{
		{Name: "pirate", Description: "A pirate.", SystemPrompt: pirateSystem, Greeting: "Arr!"},
		{Name: "ranger", Description: "A forest ranger.", Mask: filepath.Join(files.dir, "ranger.mask.safetensors")},
		{Name: "oracle", Description: "An oracle.", Mask: filepath.Join(files.dir, "oracle.mask.safetensors")},
		{Name: "bard", Description: "A bard.", LoRA: filepath.Join(files.dir, "bard")},
		{Name: "pruned", Description: "A pruned model.", Model: filepath.Join(files.dir, "pruned.gguf"), Temperature: &zero},
	}
}

// newFixture starts a server; edit adjusts its options.
func newFixture(t testing.TB, edit func(o *Options)) *fixture {
	t.Helper()
	openBase(t)
	o := Options{Base: baseCk, Personas: testPersonas(), PersonaRoot: files.dir, APIKey: testAPIKey, AdminKey: testAdminKey,
		Ctx: 512, MaxSeqs: 8, MaxQueue: 16, KVBytes: 256 << 20, Timeout: 30 * time.Second, MaxTokens: 400}
	if edit != nil {
		edit(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
	})
	return &fixture{ck: baseCk, dir: files.dir, srv: srv, ts: ts, channel: files.channel, sparse: files.sparse, adapter: files.adapter}
}

// do sends a request with the user key (key "" sends none) and returns the
// status and body.
func (f *fixture) do(t testing.TB, method, path, key, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// postJSON posts v as JSON with the user key.
func (f *fixture) postJSON(t testing.TB, path string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	code, _, data := f.do(t, "POST", path, testAPIKey, "application/json", b)
	return code, data
}

// sseEvents splits an event stream into its data payloads.
func sseEvents(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if files.dir != "" {
		os.RemoveAll(files.dir)
	}
	os.Exit(code)
}

// errorsAs is errors.As.
func errorsAs(err error, target any) bool { return errors.As(err, target) }

// tinyPNG is a 2×2 PNG image.
func tinyPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(1, 1, color.RGBA{0, 0, 255, 255})
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
