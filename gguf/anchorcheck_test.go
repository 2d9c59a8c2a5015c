package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// TestAnchorCrossCheck compares masque's quantisers with llama.cpp's on whole
// models. It runs only when MASQUE_ANCHOR_DIR names a folder holding
// m-f32.gguf and some of m-q8_0.gguf, m-q4_0.gguf, m-q4_k_m.gguf (made with
// --pure) and m-q6_k.gguf, all produced by the anchor tool (see
// testdata/gguf/README.md); the normal test suite uses the small fixture
// instead.
func TestAnchorCrossCheck(t *testing.T) {
	dir := os.Getenv("MASQUE_ANCHOR_DIR")
	if dir == "" {
		t.Skip("MASQUE_ANCHOR_DIR not set")
	}
	src, err := Open(filepath.Join(dir, "m-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, name := range []string{"m-q8_0.gguf", "m-q4_0.gguf", "m-q4_k_m.gguf", "m-q6_k.gguf"} {
		q, err := Open(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var blocks, bad int
		for i := range q.Tensors {
			qt := &q.Tensors[i]
			if !qt.Type.Quantized() {
				continue
			}
			st, ok := src.Tensor(qt.Name)
			if !ok {
				t.Fatalf("%s: %s missing from f32 file", name, qt.Name)
			}
			x, err := st.Dequantize()
			if err != nil {
				t.Fatal(err)
			}
			mine := make([]byte, len(qt.Data))
			if err := quant.QuantizeRow(qt.Type, x, mine); err != nil {
				t.Fatal(err)
			}
			bb, be := qt.Type.BlockBytes(), qt.Type.BlockElems()
			for b := 0; b < len(mine)/bb; b++ {
				blocks++
				if !bytes.Equal(mine[b*bb:(b+1)*bb], qt.Data[b*bb:(b+1)*bb]) {
					if bad < 5 {
						t.Logf("%s %s block %d differs:\n mine %x\n ggml %x", name, qt.Name, b, mine[b*bb:(b+1)*bb], qt.Data[b*bb:(b+1)*bb])
						_ = be
					}
					bad++
				}
			}
		}
		t.Logf("%s: %d of %d blocks differ", name, bad, blocks)
		if bad > 0 {
			t.Fail()
		}
		q.Close()
	}
}
