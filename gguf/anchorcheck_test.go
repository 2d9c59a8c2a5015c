package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// The tests in this file need files made by the llama.cpp anchor tool
// (/work/anchor) and run only when MASQUE_ANCHOR_DIR names the folder that
// holds them; see testdata/gguf/README.md for the commands. The normal test
// suite checks the same agreement through testdata/gguf/crosscheck.gguf.

// anchorQuantFiles are the anchor outputs compared against m-f32.gguf.
var anchorQuantFiles = []string{"m-q8_0.gguf", "m-q4_0.gguf", "m-q4_k_m.gguf", "m-q6_k.gguf"}

func anchorDir(t *testing.T) string {
	dir := os.Getenv("MASQUE_ANCHOR_DIR")
	if dir == "" {
		t.Skip("MASQUE_ANCHOR_DIR not set")
	}
	return dir
}

// TestAnchorCrossCheck re-quantises every quantised tensor of the anchor's
// models from the f32 model and requires byte-identical blocks.
func TestAnchorCrossCheck(t *testing.T) {
	dir := anchorDir(t)
	src, err := Open(filepath.Join(dir, "m-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, name := range anchorQuantFiles {
		q, err := Open(filepath.Join(dir, name))
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
				t.Fatalf("%s: %s missing from the f32 model", name, qt.Name)
			}
			x, err := st.Dequantize()
			if err != nil {
				t.Fatal(err)
			}
			mine := make([]byte, len(qt.Data))
			if err := quant.QuantizeRow(qt.Type, x, mine); err != nil {
				t.Fatal(err)
			}
			bb := qt.Type.BlockBytes()
			for b := 0; b < len(mine)/bb; b++ {
				blocks++
				if !bytes.Equal(mine[b*bb:(b+1)*bb], qt.Data[b*bb:(b+1)*bb]) {
					if bad < 3 {
						t.Errorf("%s %s block %d differs:\n masque %x\n ggml   %x", name, qt.Name, b, mine[b*bb:(b+1)*bb], qt.Data[b*bb:(b+1)*bb])
					}
					bad++
				}
			}
		}
		t.Logf("%s: %d of %d blocks differ", name, bad, blocks)
		q.Close()
	}
}

// Cross-check fixture layout: rows of one tensor of the anchor's f32 model
// and the same rows from each of llama.cpp's quantisations of it. Rows 0–23
// hold five Q4_K blocks, and row 218 a Q6_K block, whose bytes depend on
// where the reference build fuses multiply-adds (quant/quant_fma.go).
const crossCheckSource = "blk.0.ffn_down.weight"

var crossCheckRows = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 218}

// TestWriteCrossCheckFixture (re)writes testdata/gguf/crosscheck.gguf from
// the anchor's files when MASQUE_WRITE_FIXTURE=1.
func TestWriteCrossCheckFixture(t *testing.T) {
	dir := anchorDir(t)
	if os.Getenv("MASQUE_WRITE_FIXTURE") != "1" {
		t.Skip("MASQUE_WRITE_FIXTURE != 1")
	}
	meta := []KV{
		{"general.name", "masque quantiser cross-check"},
		{"general.description", "Rows of " + crossCheckSource + " from an anchor random-hf model (f32) and the same rows as quantised by llama.cpp (anchor quantize --pure); see testdata/gguf/README.md."},
		{"masque.crosscheck.source_tensor", crossCheckSource},
		{"masque.crosscheck.rows", func() []uint32 {
			var r []uint32
			for _, i := range crossCheckRows {
				r = append(r, uint32(i))
			}
			return r
		}()},
	}
	var tensors []WriteTensor
	add := func(file, suffix string) {
		f, err := Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ti, ok := f.Tensor(crossCheckSource)
		if !ok {
			t.Fatalf("%s has no %s", file, crossCheckSource)
		}
		rb, err := ti.Type.RowBytes(ti.Shape[0])
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		for _, r := range crossCheckRows {
			data = append(data, ti.Data[r*rb:(r+1)*rb]...)
		}
		tensors = append(tensors, WriteTensor{
			Name:  "ffn_down." + suffix,
			Shape: []int{ti.Shape[0], len(crossCheckRows)},
			Type:  ti.Type,
			Data:  data,
		})
	}
	add("m-f32.gguf", "f32")
	add("m-q8_0.gguf", "q8_0")
	add("m-q4_0.gguf", "q4_0")
	add("m-q4_k_m.gguf", "q4_k")
	add("m-q6_k.gguf", "q6_k")
	out := filepath.Join("..", "testdata", "gguf", "crosscheck.gguf")
	if p := os.Getenv("MASQUE_FIXTURE_OUT"); p != "" {
		out = p
	}
	if err := Write(out, meta, tensors); err != nil {
		t.Fatal(err)
	}
}
