package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/persona"
)

// TestFileErrorsDoNotLeak: a persona added over the API whose mask, LoRA
// adapter or model is some other file inside the persona root (a text
// file, say) is refused with an error that says what is wrong without
// echoing the file's bytes (it answered "header length
// 4995128901736877908": the file's first 8 bytes).
func TestFileErrorsDoNotLeak(t *testing.T) {
	f := newFixture(t, nil)
	const secret = "db_password=hunter2-Zq9 token=sk-LIVE-7731 {\"k\": \"v\"} [1, 2]"
	dir, err := os.MkdirTemp(f.dir, "leak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rel := func(p string) string { r, _ := filepath.Rel(f.dir, p); return r }
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("notes.txt", secret+"\n")
	// a safetensors-looking start whose "header" is the secret text
	hdr := make([]byte, 8)
	hdr[0] = byte(len(secret))
	st := write("fake.safetensors", string(hdr)+secret)
	write("adapter/adapter_config.json", secret)
	write("adapter/adapter_model.safetensors", secret)
	gguf := write("model.gguf", secret)
	write("folder/config.json", secret)
	for _, tc := range []struct {
		name string
		spec persona.Spec
	}{
		{"text as mask", persona.Spec{Name: "leak1", Mask: rel(text)}},
		{"bad header as mask", persona.Spec{Name: "leak2", Mask: rel(st)}},
		{"text as adapter", persona.Spec{Name: "leak3", LoRA: rel(filepath.Join(dir, "adapter"))}},
		{"text as GGUF", persona.Spec{Name: "leak4", Model: rel(gguf)}},
		{"text as model config", persona.Spec{Name: "leak5", Model: rel(filepath.Join(dir, "folder"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(tc.spec)
			code, _, body := f.do(t, "POST", "/v1/personas", testAdminKey, "application/json", b)
			if code < 400 || code >= 500 {
				t.Fatalf("status %d: %s", code, body)
			}
			var e struct {
				Error struct{ Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
				t.Fatalf("not an OpenAI error: %s", body)
			}
			msg := e.Error.Message
			for _, leak := range leaks(secret, hdr) {
				if strings.Contains(msg, leak) {
					t.Fatalf("the error echoes the file's bytes (%q): %s", leak, msg)
				}
			}
			t.Log(msg)
		})
	}
}

// leaks lists what would give the file's content away: every 4-byte piece
// of the secret that is not an ordinary word, and the first 8 bytes of
// each file read as a little-endian number.
func leaks(secret string, hdr []byte) []string {
	var out []string
	for i := 0; i+4 <= len(secret); i++ {
		out = append(out, secret[i:i+4])
	}
	num := func(b []byte) string {
		var n uint64
		for i := 7; i >= 0; i-- {
			n = n<<8 | uint64(b[i])
		}
		return strings.TrimSpace(json.Number(strings.TrimSpace(func() string { b, _ := json.Marshal(n); return string(b) }())).String())
	}
	out = append(out, num([]byte(secret[:8])))
	return out
}
