package mask

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/model"
)

// FuzzLoad: arbitrary bytes never make Load panic; a file it accepts saves
// and loads back to the same mask.
func FuzzLoad(f *testing.F) {
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	seed := randomMask(m, 0.5, 1, func(p model.Proj) bool { return p == model.ProjK })
	p := filepath.Join(dir, "seed.safetensors")
	if err := seed.Save(p); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	f.Add(b)
	f.Add([]byte("not a mask"))
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "m.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		mk, err := Load(p)
		if err != nil {
			return
		}
		q := filepath.Join(t.TempDir(), "again.safetensors")
		if err := mk.Save(q); err != nil {
			t.Fatal(err)
		}
		again, err := Load(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range mk.Keys() {
			if !again.Get(k).Equal(mk.Get(k)) {
				t.Fatalf("%s changed in a round trip", k)
			}
		}
	})
}
