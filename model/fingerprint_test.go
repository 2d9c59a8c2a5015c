package model

import "testing"

func fpLoad(t *testing.T, name string) *Model {
	t.Helper()
	var m *Model
	var err error
	if name == "stories" {
		m, err = LoadLlama2C("../testdata/stories260K/stories260K.bin")
	} else {
		m, err = LoadHF("../testdata/hf-tiny/" + name)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestFingerprint(t *testing.T) {
	a, b := fpLoad(t, "stories"), fpLoad(t, "stories")
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatal("fingerprint is not deterministic")
	}
	hf := fpLoad(t, "llama")
	if a.Fingerprint() == hf.Fingerprint() {
		t.Fatal("different models share a fingerprint")
	}
	// Changing one sampled weight changes the fingerprint.
	w := b.Layers[0].Q.F32()
	w[0] += 1
	if a.Fingerprint() == b.Fingerprint() {
		t.Fatal("fingerprint ignores the weights")
	}
}
