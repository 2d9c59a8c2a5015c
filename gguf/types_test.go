package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// Every GGML type masque reads, checked against llama.cpp itself: rows of
// tensors of a random SmolLM2-135M-shaped model that llama.cpp quantised
// into every type, with the values ggml's own dequantiser (to_float) gives
// for them. Provenance: testdata/gguf/README.md ("types.gguf").

var typesFixturePath = filepath.Join("..", "testdata", "gguf", "types.gguf")

// typesFixtureFiles are the anchor files the fixture samples (in
// $MASQUE_ANCHOR_DIR, named <name>.gguf). The SmolLM2 shape's 576-wide rows
// send Q2_K to its fallback, so Q2_K comes from the 256-wide mini model.
var typesFixtureFiles = []string{"smol-f16", "smol-bf16", "smol-q8_0", "smol-q4_0", "smol-q4_1", "smol-q5_0", "smol-q5_1", "smol-q2_k",
	"smol-q3_k_m", "smol-q4_k_m", "smol-q5_k_m", "smol-q6_k", "smol-iq4_nl", "smol-iq4_xs", "mini-q2_k"}

// TestWriteTypesFixture (re)writes testdata/gguf/types.gguf when
// MASQUE_WRITE_FIXTURE=1: for each anchor file and each GGML type in it, the
// first and last rows of the first tensor (in file order) of that type, as
// stored, as ggml dequantises them (MASQUE_ANCHOR_BIN's "rows" command, see
// the README), and as they were in the f32 model.
func TestWriteTypesFixture(t *testing.T) {
	dir := anchorDir(t)
	if os.Getenv("MASQUE_WRITE_FIXTURE") != "1" {
		t.Skip("MASQUE_WRITE_FIXTURE != 1")
	}
	bin := os.Getenv("MASQUE_ANCHOR_BIN")
	if bin == "" {
		t.Fatal("MASQUE_ANCHOR_BIN must name the anchor binary with the rows command")
	}
	src, err := Open(filepath.Join(dir, "smol-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	meta := []KV{
		{"general.name", "masque GGML type cross-check"},
		{"general.description", "Rows of an anchor random-hf SmolLM2-135M-shaped model as llama.cpp quantised them (anchor quantize) and as ggml dequantises them; see testdata/gguf/README.md."},
	}
	var tensors []WriteTensor
	haveSrc := map[string]bool{}
	for _, ft := range typesFixtureFiles {
		f, err := Open(filepath.Join(dir, ft+".gguf"))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[quant.DType]bool{}
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			if len(ti.Shape) != 2 || seen[ti.Type] || ti.Type == quant.F32 {
				continue
			}
			seen[ti.Type] = true
			rows := []int{0, ti.Rows() - 1}
			rb, _ := ti.Type.RowBytes(ti.Shape[0])
			var raw []byte
			for _, r := range rows {
				raw = append(raw, ti.Data[r*rb:(r+1)*rb]...)
			}
			out, err := exec.Command(bin, "rows", "--gguf", f.Path, "--tensor", ti.Name, "--rows", fmt.Sprintf("%d,%d", rows[0], rows[1])).Output()
			if err != nil {
				t.Fatalf("anchor rows %s %s: %v", f.Path, ti.Name, err)
			}
			var res struct {
				Type   string      `json:"type"`
				Values [][]float32 `json:"values"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(res.Type, ti.Type.String()) {
				t.Fatalf("%s: ggml says %s, masque %s", ti.Name, res.Type, ti.Type)
			}
			var vals []float32
			for _, v := range res.Values {
				vals = append(vals, v...)
			}
			base := ft + "/" + ti.Name
			shape := []int{ti.Shape[0], len(rows)}
			tensors = append(tensors,
				WriteTensor{Name: base + "/" + ti.Type.String(), Shape: shape, Type: ti.Type, Data: raw},
				WriteTensor{Name: base + "/ggml", Shape: shape, Type: quant.F32, Data: f32Bytes(vals)})
			srcName := strings.SplitN(ft, "-", 2)[0] + "/" + ti.Name
			if !haveSrc[srcName] {
				haveSrc[srcName] = true
				sf := src
				if !strings.HasPrefix(ft, "smol-") {
					if sf, err = Open(filepath.Join(dir, strings.SplitN(ft, "-", 2)[0]+"-f32.gguf")); err != nil {
						t.Fatal(err)
					}
					defer sf.Close()
				}
				st, ok := sf.Tensor(ti.Name)
				if !ok {
					t.Fatalf("%s missing from the f32 model", ti.Name)
				}
				var x []byte
				for _, r := range rows {
					x = append(x, st.Data[r*4*ti.Shape[0]:(r+1)*4*ti.Shape[0]]...)
				}
				tensors = append(tensors, WriteTensor{Name: "f32/" + srcName, Shape: shape, Type: quant.F32, Data: x})
			}
		}
		f.Close()
	}
	if err := Write(typesFixturePath, meta, tensors); err != nil {
		t.Fatal(err)
	}
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		bits := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	return b
}

// llamaCppDeterministic are the types whose llama.cpp quantiser (without an
// importance matrix) masque reproduces byte for byte.
var llamaCppDeterministic = map[quant.DType]bool{
	quant.F16: true, quant.BF16: true, quant.Q8_0: true, quant.Q4_0: true, quant.Q4_1: true,
	quant.Q5_0: true, quant.Q5_1: true, quant.Q4_K: true, quant.Q5_K: true, quant.Q6_K: true, quant.Q2_K: true, quant.Q3_K: true, quant.IQ4_NL: true, quant.IQ4_XS: true,
}

// TestTypesAgainstLlamaCpp decodes every sampled row with masque's decoder
// and requires ggml's values exactly; where masque also writes the type,
// re-quantising the f32 source rows must give llama.cpp's bytes.
func TestTypesAgainstLlamaCpp(t *testing.T) {
	f, err := Open(typesFixturePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	covered := map[quant.DType]int{}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		parts := strings.Split(ti.Name, "/")
		if len(parts) != 3 || parts[0] == "f32" || parts[2] == "ggml" {
			continue
		}
		model := strings.SplitN(parts[0], "-", 2)[0]
		want, ok := f.Tensor(parts[0] + "/" + parts[1] + "/ggml")
		if !ok {
			t.Fatalf("%s has no ggml values", ti.Name)
		}
		wv, _ := want.Dequantize()
		got, err := ti.Dequantize()
		if err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		bad := 0
		for j := range wv {
			if math.Float32bits(got[j]) != math.Float32bits(wv[j]) {
				if bad < 3 {
					t.Errorf("%s: element %d = %g, ggml %g", ti.Name, j, got[j], wv[j])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ from ggml's", ti.Name, bad, len(wv))
		}
		covered[ti.Type]++
		if !llamaCppDeterministic[ti.Type] {
			continue
		}
		src, ok := f.Tensor("f32/" + model + "/" + parts[1])
		if !ok {
			t.Fatalf("no f32 source for %s", ti.Name)
		}
		x, _ := src.Dequantize()
		cols := ti.Shape[0]
		rb, _ := ti.Type.RowBytes(cols)
		mine := make([]byte, len(ti.Data))
		for r := range ti.Rows() {
			if err := quant.QuantizeRow(ti.Type, x[r*cols:(r+1)*cols], mine[r*rb:(r+1)*rb]); err != nil {
				t.Fatal(err)
			}
		}
		bb := ti.Type.BlockBytes()
		nbad := 0
		for b := 0; b < len(mine)/bb; b++ {
			if !bytes.Equal(mine[b*bb:(b+1)*bb], ti.Data[b*bb:(b+1)*bb]) {
				if nbad == 0 {
					t.Errorf("%s block %d:\n masque    %x\n llama.cpp %x", ti.Name, b, mine[b*bb:(b+1)*bb], ti.Data[b*bb:(b+1)*bb])
				}
				nbad++
			}
		}
		if nbad > 0 {
			t.Errorf("%s: %d of %d blocks differ from llama.cpp's", ti.Name, nbad, len(mine)/bb)
		}
	}
	var names []string
	for dt, n := range covered {
		names = append(names, fmt.Sprintf("%s:%d", dt, n))
	}
	sort.Strings(names)
	t.Logf("checked %s", strings.Join(names, " "))
	for _, dt := range []quant.DType{quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1,
		quant.Q2_K, quant.Q3_K, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.IQ4_NL, quant.IQ4_XS} {
		if covered[dt] == 0 {
			t.Errorf("the fixture has no %s rows", dt)
		}
	}
}
