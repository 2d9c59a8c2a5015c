package serve

import (
	"net/http"
	"strings"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
)

// TestCacheTypeOption: Options.CacheType applies to the base and to a
// persona's own model: their engine slots are sized in that type and both
// answer; an unknown type is refused by New.
func TestCacheTypeOption(t *testing.T) {
	ct := model.CacheType{K: quant.Q8_0, V: quant.F16}
	f := newFixture(t, func(o *Options) { o.CacheType = ct })
	t.Cleanup(func() { _ = f.ck.Model.SetCacheType(model.CacheType{}) }) // the base is shared by the package's tests
	f.srv.mu.RLock()
	pruned := f.srv.personas["pruned"].base
	f.srv.mu.RUnlock()
	for _, b := range []*baseModel{f.srv.base, pruned} {
		m := b.eb.Model
		if m.CacheType() != ct || b.eb.SlotBytes() != int64(b.eb.Ctx)*ct.PositionBytes(&m.Config) {
			t.Errorf("base %s: cache type %s, slot %d bytes; want %s, %d", b.eb.Name, m.CacheType(), b.eb.SlotBytes(), ct, int64(b.eb.Ctx)*ct.PositionBytes(&m.Config))
		}
	}
	for _, p := range []string{"pirate", "pruned"} {
		code, body := f.postJSON(t, "/v1/chat/completions", map[string]any{"model": p, "max_tokens": 8,
			"messages": []map[string]string{{"role": "user", "content": "Hello"}}})
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	o := Options{Base: baseCk, CacheType: model.CacheType{K: quant.Q6_K}}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "keys cannot be stored as q6_k") {
		t.Errorf("New with q6_k keys: %v", err)
	}
}
