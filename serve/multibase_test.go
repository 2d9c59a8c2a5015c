package serve

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/lora"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
)

var (
	voicesOnce sync.Once
	voicesCk   *checkpoint.Checkpoint
	voicesErr  error
)

// openVoices opens builtin:voices once, as a second base model.
func openVoices(t testing.TB) *checkpoint.Checkpoint {
	t.Helper()
	voicesOnce.Do(func() { voicesCk, voicesErr = checkpoint.Open(builtin.Voices, checkpoint.Options{}) })
	if voicesErr != nil {
		t.Fatal(voicesErr)
	}
	return voicesCk
}

// startServer starts a server over o (keys and limits of the fixture) and
// returns it with a fixture to send requests.
func startServer(t testing.TB, o Options) *fixture {
	t.Helper()
	o.APIKey, o.AdminKey, o.PersonaRoot = testAPIKey, testAdminKey, files.dir
	o.Ctx, o.MaxSeqs, o.MaxQueue, o.Timeout, o.MaxTokens = 256, 8, 16, 30*time.Second, 400
	if o.KVBytes == 0 {
		o.KVBytes = 64 << 20
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
	return &fixture{ck: o.Base, dir: files.dir, srv: srv, ts: ts}
}

// chatText asks persona for a sampled answer with a fixed seed.
func chatText(t testing.TB, f *fixture, persona string) string {
	t.Helper()
	code, body := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": persona, "max_tokens": 24, "temperature": 0.9, "seed": 5,
		"messages": []map[string]any{{"role": "user", "content": "Tell me about the sea."}}})
	if code != 200 {
		t.Errorf("%s: %d %s", persona, code, body)
		return ""
	}
	var res struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Choices) != 1 {
		t.Fatalf("%s: %v %s", persona, err, body)
	}
	return res.Choices[0].Message.Content
}

// TestTwoBases: a server with two base models (stories260K, the default,
// and builtin:voices, named by two personas that share one copy) serves
// personas of both at once, each answering as on a server with its base
// alone; the KV memory is split between the bases in proportion to one
// sequence of each, and /health, /metrics and /v1/models say so.
func TestTwoBases(t *testing.T) {
	openBase(t)
	voices := openVoices(t)
	kjv := "You speak in the manner of the King James Bible."
	specs := []persona.Spec{
		{Name: "pirate", SystemPrompt: pirateSystem},
		{Name: "ranger", Description: "A forest ranger.", Mask: filepath.Join(files.dir, "ranger.mask.safetensors")},
		{Name: "preacher", SystemPrompt: kjv, Model: builtin.Voices},
		{Name: "webster", Description: "A lexicographer.", Model: builtin.Voices},
	}
	f := startServer(t, Options{Base: baseCk, Personas: specs, PersonasFile: "npcs.yaml"})

	if len(f.srv.bases) != 2 {
		t.Fatalf("%d bases, want 2", len(f.srv.bases))
	}
	f.srv.mu.RLock()
	pb, wb := f.srv.personas["preacher"].base, f.srv.personas["webster"].base
	f.srv.mu.RUnlock()
	if pb != wb || pb != f.srv.bases[1] {
		t.Fatalf("the voices personas do not share the server's one copy of voices")
	}

	// Alone: each base on a server of its own.
	stories := startServer(t, Options{Base: baseCk, Personas: specs[:2]})
	alone := startServer(t, Options{Base: voices, Personas: []persona.Spec{{Name: "preacher", SystemPrompt: kjv}, {Name: "webster", Description: "A lexicographer."}}})
	want := map[string]string{}
	for _, p := range []string{"pirate", "ranger"} {
		want[p] = chatText(t, stories, p)
	}
	for _, p := range []string{"preacher", "webster"} {
		want[p] = chatText(t, alone, p)
	}
	if want["preacher"] == want["pirate"] {
		t.Fatalf("the two bases answer alike: %q", want)
	}
	// Together: every persona twice, all at once.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = chatText(t, f, specs[i%4].Name)
		}()
	}
	wg.Wait()
	for i, g := range got {
		if p := specs[i%4].Name; g != want[p] {
			t.Errorf("%s on the two-base server:\n got %q\nwant %q (its base alone)", p, g, want[p])
		}
	}

	// The split: one sequence of each in proportion, the whole budget.
	bases := f.srv.Bases()
	if bases[0].ID != "base" || bases[1].ID != "voices" || bases[1].Model != builtin.Voices || bases[1].Personas != 2 || bases[0].Personas != 2 {
		t.Errorf("bases %+v", bases)
	}
	var sum int64
	for _, b := range bases {
		sum += b.KVBudget
	}
	total := int64(64 << 20)
	n := total / (bases[0].SlotBytes + bases[1].SlotBytes)
	for _, b := range bases {
		if b.KVBudget/b.SlotBytes != n || b.Slots != int(min(8, n)) {
			t.Errorf("base %s: share %d bytes (%d sequences of %d bytes, %d slots), want %d sequences", b.ID, b.KVBudget, b.KVBudget/b.SlotBytes, b.SlotBytes, b.Slots, n)
		}
		if b.KVReserved > b.KVBudget || b.KVReserved == 0 {
			t.Errorf("base %s: %d bytes reserved of a share of %d", b.ID, b.KVReserved, b.KVBudget)
		}
	}
	if sum > total || sum < total-int64(len(bases)) {
		t.Errorf("the shares add up to %d bytes, want the budget %d", sum, total)
	}
	if bases[0].SlotBytes == bases[1].SlotBytes {
		t.Errorf("both bases' sequences take %d bytes: the split proves nothing", bases[0].SlotBytes)
	}

	_, _, body := f.do(t, "GET", "/health", testAPIKey, "", nil)
	var health struct {
		Slots    int         `json:"slots"`
		KVBudget int64       `json:"kv_budget_bytes"`
		Bases    []BaseStats `json:"bases"`
	}
	if err := json.Unmarshal(body, &health); err != nil {
		t.Fatal(err)
	}
	if len(health.Bases) != 2 || health.Bases[1].KVBudget != bases[1].KVBudget || health.KVBudget != sum || health.Slots != 16 {
		t.Errorf("/health: %s", body)
	}
	_, _, metrics := f.do(t, "GET", "/metrics", testAPIKey, "", nil)
	for _, line := range []string{
		fmt.Sprintf("masque_base_kv_cache_budget_bytes{base=%q} %s", "voices", promFloat(bases[1].KVBudget)),
		fmt.Sprintf("masque_base_kv_cache_budget_bytes{base=%q} %s", "base", promFloat(bases[0].KVBudget)),
		fmt.Sprintf("masque_kv_cache_budget_bytes %s", promFloat(sum)),
		`masque_batch_sequences_count{base="voices"}`,
	} {
		if !strings.Contains(string(metrics), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	_, _, body = f.do(t, "GET", "/v1/models", testAPIKey, "", nil)
	var models struct{ Data []modelObject }
	if err := json.Unmarshal(body, &models); err != nil {
		t.Fatal(err)
	}
	bases2 := map[string]string{}
	for _, m := range models.Data {
		bases2[m.ID] = m.Base
	}
	if w := map[string]string{"base": "base", "pirate": "base", "ranger": "base", "preacher": "voices", "webster": "voices"}; fmt.Sprint(bases2) != fmt.Sprint(w) {
		t.Errorf("/v1/models bases %v, want %v", bases2, w)
	}

	// A persona added at run time joins a running base by its id.
	code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "deacon", SystemPrompt: kjv, Model: "voices"}))
	if code != 201 || !strings.Contains(string(body), `"base":"voices"`) {
		t.Fatalf("adding a persona on the voices base: %d %s", code, body)
	}
	if g := chatText(t, f, "deacon"); g != want["preacher"] {
		t.Errorf("deacon (as preacher, added at run time):\n got %q\nwant %q", g, want["preacher"])
	}
	f.srv.mu.RLock()
	db := f.srv.personas["deacon"].base
	f.srv.mu.RUnlock()
	if db != pb {
		t.Error("the persona added at run time has a copy of voices of its own")
	}
	// Removing every persona of a base keeps the base.
	for _, p := range []string{"deacon", "preacher", "webster"} {
		if code, _, body := f.do(t, "DELETE", "/v1/personas/"+p, testAdminKey, "", nil); code != 200 {
			t.Fatalf("delete %s: %d %s", p, code, body)
		}
	}
	code, _, body = f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "deacon", SystemPrompt: kjv, Model: builtin.Voices}))
	if code != 201 {
		t.Fatalf("adding a persona on the voices base again: %d %s", code, body)
	}
	if g := chatText(t, f, "deacon"); g != want["preacher"] {
		t.Errorf("deacon, added again:\n got %q\nwant %q", g, want["preacher"])
	}
}

// TestBaseErrors: a persona whose model does not open fails the start,
// naming the registry file, the persona and the model; a budget that does
// not hold one sequence of each base fails it too; at run time, a persona
// naming a model that is not there gets a 400.
func TestBaseErrors(t *testing.T) {
	openBase(t)
	missing := filepath.Join(t.TempDir(), "no-such-model.gguf")
	_, err := New(Options{Base: baseCk, PersonasFile: "world/npcs.yaml", Ctx: 256,
		Personas: []persona.Spec{{Name: "pirate"}, {Name: "king", Model: missing}}})
	if err == nil || !strings.Contains(err.Error(), "world/npcs.yaml") || !strings.Contains(err.Error(), "persona king") || !strings.Contains(err.Error(), "no-such-model.gguf") {
		t.Errorf("a base that does not open: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.gguf")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Base: baseCk, PersonasFile: "npcs.yaml", Ctx: 256, Personas: []persona.Spec{{Name: "king", Model: garbage}}})
	if err == nil || !strings.Contains(err.Error(), "npcs.yaml: persona king") || !strings.Contains(err.Error(), "garbage.gguf") {
		t.Errorf("a base that is not a model: %v", err)
	}
	voices := openVoices(t)
	one := newBaseModel("x", baseCk, 256, false).eb.SlotBytes() + newBaseModel("y", voices, 256, false).eb.SlotBytes()
	_, err = New(Options{Base: baseCk, Ctx: 256, KVBytes: one - 1, Personas: []persona.Spec{{Name: "preacher", Model: builtin.Voices}}})
	if err == nil || !strings.Contains(err.Error(), "does not hold one sequence of each of the 2 bases") {
		t.Errorf("a budget below one sequence of each base: %v", err)
	}
	f := startServer(t, Options{Base: baseCk, KVBytes: one, Personas: []persona.Spec{{Name: "preacher", Model: builtin.Voices}}})
	if b := f.srv.Bases(); b[0].Slots != 1 || b[1].Slots != 1 {
		t.Errorf("a budget of one sequence of each base: %+v", b)
	}
	code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", jsonBytes(persona.Spec{Name: "king", Model: "no-such-model.gguf"}))
	if code != 400 || !strings.Contains(string(body), "no-such-model.gguf") {
		t.Errorf("a persona added at run time with a missing model: %d %s", code, body)
	}
}

// promFloat writes v as the Prometheus text format does.
func promFloat(v int64) string { return strconv.FormatFloat(float64(v), 'g', -1, 64) }

func TestKVShares(t *testing.T) {
	for _, tc := range []struct {
		total int64
		slots []int64
		want  []int64
	}{
		{100, []int64{10}, []int64{100}},
		{100, []int64{10, 30}, []int64{25, 75}},
		{45, []int64{10, 30}, []int64{11, 33}}, // one of each, the 5 left split 1:3 (rounded down)
		{30, []int64{10, 30}, []int64{7, 22}},  // below one of each: the caller refuses it
	} {
		if got := kvShares(tc.total, tc.slots); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("kvShares(%d, %v) = %v, want %v", tc.total, tc.slots, got, tc.want)
		}
	}
}

// TestMaskAndLoRAOnSecondBase: mask and LoRA personas that name a model
// other than the default base apply over that model, as a base of its own
// shared with its other personas: each answers as the same persona on a
// server whose default base that model is. A persona added at run time can
// put a mask on a running base by its id, not on a model the server does
// not run, and a mask made for the default base is refused on the other.
func TestMaskAndLoRAOnSecondBase(t *testing.T) {
	openBase(t)
	voices := openVoices(t)
	vm := voices.Model
	mk := mask.New(vm)
	keep := make([]bool, vm.Config.Intermediate)
	for c := range keep {
		keep[c] = c%3 != 0
	}
	for l := range vm.Config.Layers {
		for _, p := range []model.Proj{model.ProjGate, model.ProjUp, model.ProjDown} {
			if err := mk.SetChannels(l, p, keep); err != nil {
				t.Fatal(err)
			}
		}
	}
	unstructured := mask.New(vm)
	rng := rand.New(rand.NewPCG(4, 5))
	for l := range vm.Config.Layers {
		s := unstructured.Shapes[model.ProjQ]
		b := mask.NewBits(s[0], s[1])
		for r := range s[0] {
			for c := range s[1] {
				b.Set(r, c, rng.IntN(3) != 0)
			}
		}
		if err := unstructured.Set(mask.Key{Layer: l, Proj: model.ProjQ}, b); err != nil {
			t.Fatal(err)
		}
	}
	ad, err := lora.New(vm, lora.Config{Rank: 4, Alpha: 8, Targets: []model.Proj{model.ProjQ, model.ProjV, model.ProjDown}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range ad.All() {
		for i := range pr.B {
			pr.B[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	dir := filepath.Join(files.dir, "second-base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*mask.Mask{"channels": mk, "q": unstructured} {
		if err := m.Save(filepath.Join(dir, name+".safetensors")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ad.Save(filepath.Join(dir, "lora"), nil); err != nil {
		t.Fatal(err)
	}
	kjv := "You speak in the manner of the King James Bible."
	on := func(model string) []persona.Spec {
		return []persona.Spec{
			{Name: "preacher", SystemPrompt: kjv, Model: model},
			{Name: "monk", SystemPrompt: kjv, Model: model, Mask: filepath.Join(dir, "channels.safetensors")},
			{Name: "scribe", SystemPrompt: kjv, Model: model, LoRA: filepath.Join(dir, "lora")},
			{Name: "hermit", SystemPrompt: kjv, Model: model, Mask: filepath.Join(dir, "q.safetensors"), LoRA: filepath.Join(dir, "lora")},
		}
	}
	specs := append([]persona.Spec{{Name: "pirate", SystemPrompt: pirateSystem}}, on(builtin.Voices)...)
	f := startServer(t, Options{Base: baseCk, Personas: specs})
	if len(f.srv.bases) != 2 {
		t.Fatalf("%d bases, want 2", len(f.srv.bases))
	}
	f.srv.mu.RLock()
	for _, p := range []string{"preacher", "monk", "scribe", "hermit"} {
		if f.srv.personas[p].base != f.srv.bases[1] {
			t.Errorf("%s does not run on the server's one copy of voices", p)
		}
	}
	f.srv.mu.RUnlock()

	// Alone: the same personas on a server whose default base is voices.
	alone := startServer(t, Options{Base: voices, Personas: on("")})
	want := map[string]string{}
	for _, p := range []string{"preacher", "monk", "scribe", "hermit"} {
		want[p] = chatText(t, alone, p)
	}
	for _, p := range []string{"monk", "scribe", "hermit"} {
		if want[p] == want["preacher"] {
			t.Fatalf("%s answers as the bare voices model: the test proves nothing (%q)", p, want[p])
		}
	}
	var wg sync.WaitGroup
	got := make([]string, 10)
	names := []string{"pirate", "preacher", "monk", "scribe", "hermit"}
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = chatText(t, f, names[i%5])
		}()
	}
	wg.Wait()
	for i, g := range got {
		if p := names[i%5]; p != "pirate" && g != want[p] {
			t.Errorf("%s on the two-base server:\n got %q\nwant %q (on voices alone)", p, g, want[p])
		}
	}

	// At run time: a mask over the running voices base, by its id.
	code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json",
		jsonBytes(persona.Spec{Name: "friar", SystemPrompt: kjv, Model: "voices", Mask: "second-base/channels.safetensors"}))
	if code != 201 || !strings.Contains(string(body), `"base":"voices"`) {
		t.Fatalf("adding a mask persona on the voices base: %d %s", code, body)
	}
	if g := chatText(t, f, "friar"); g != want["monk"] {
		t.Errorf("friar (as monk, added at run time):\n got %q\nwant %q", g, want["monk"])
	}
	// Not on a model the server does not run, and not a mask of another model.
	code, _, body = f.do(t, "POST", "/v1/personas", testAdminKey, "application/json",
		jsonBytes(persona.Spec{Name: "abbot", Model: "second-base/elsewhere.gguf", Mask: "second-base/channels.safetensors"}))
	if code != 400 || !strings.Contains(string(body), "not one of the server's bases") {
		t.Errorf("a mask over a model the server does not run: %d %s", code, body)
	}
	code, _, body = f.do(t, "POST", "/v1/personas", testAdminKey, "application/json",
		jsonBytes(persona.Spec{Name: "abbot", Model: "voices", Mask: "ranger.mask.safetensors"}))
	if code != 400 || !strings.Contains(string(body), "abbot") {
		t.Errorf("a mask of stories260K on voices: %d %s", code, body)
	}
}
