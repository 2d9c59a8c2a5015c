package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const hfTiny = "../testdata/hf-tiny"

// rawHeader decodes a file's header with plain encoding/json, independently
// of the package's parser.
type rawEntry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets []int  `json:"data_offsets"`
}

func rawHeader(t *testing.T, path string) (entries map[string]rawEntry, meta map[string]string, dataStart int, contents []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint64(b))
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &all); err != nil {
		t.Fatal(err)
	}
	entries = map[string]rawEntry{}
	for k, v := range all {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e rawEntry
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatal(err)
		}
		entries[k] = e
	}
	return entries, meta, 8 + n, b
}

func TestOpenRealFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(hfTiny, "*", "*.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 12 {
		t.Fatalf("found only %d fixture files: %v", len(paths), paths)
	}
	for _, p := range paths {
		t.Run(strings.TrimPrefix(p, hfTiny+"/"), func(t *testing.T) {
			want, wantMeta, dataStart, contents := rawHeader(t, p)
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			names := f.Names()
			if len(names) != len(want) {
				t.Fatalf("%d tensors, header has %d", len(names), len(want))
			}
			prevBegin := -1
			for _, name := range names {
				w, ok := want[name]
				if !ok {
					t.Fatalf("unexpected tensor %q", name)
				}
				if w.Offsets[0] < prevBegin {
					t.Errorf("Names not in offset order at %q", name)
				}
				prevBegin = w.Offsets[0]
				tt, ok := f.Tensor(name)
				if !ok {
					t.Fatalf("Tensor(%q) missing", name)
				}
				if tt.Name != name || tt.DType != w.DType || !slices.Equal(tt.Shape, w.Shape) || tt.File != p {
					t.Errorf("%q: got %s %v in %s, header says %s %v", name, tt.DType, tt.Shape, tt.File, w.DType, w.Shape)
				}
				if !slices.Equal(tt.Data, contents[dataStart+w.Offsets[0]:dataStart+w.Offsets[1]]) {
					t.Errorf("%q: data differs from the file bytes", name)
				}
				if tt.NumElements()*DTypeSize(tt.DType) != len(tt.Data) {
					t.Errorf("%q: %d elements but %d bytes", name, tt.NumElements(), len(tt.Data))
				}
				if _, err := tt.Type(); err != nil {
					t.Errorf("%q: %v", name, err)
				}
			}
			if got := f.Metadata(); len(got) != len(wantMeta) || got["format"] != wantMeta["format"] {
				t.Errorf("metadata %v, want %v", got, wantMeta)
			}
		})
	}
}

// checkHalf compares the first values of a 16-bit tensor with hand-decoded
// values and with an independent bit-level decode of the whole tensor.
func checkHalf(t *testing.T, path, name, dtype string, wantBits []uint16, wantVals []float32) {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tt, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %q", name)
	}
	if tt.DType != dtype {
		t.Fatalf("dtype %s, want %s", tt.DType, dtype)
	}
	qt, err := tt.Type()
	if err != nil || !strings.EqualFold(qt.String(), dtype) {
		t.Fatalf("Type() = %v, %v", qt, err)
	}
	got, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != tt.NumElements() {
		t.Fatalf("%d values for %d elements", len(got), tt.NumElements())
	}
	for i := range wantBits {
		if bits := binary.LittleEndian.Uint16(tt.Data[2*i:]); bits != wantBits[i] {
			t.Errorf("raw[%d] = %#04x, want %#04x", i, bits, wantBits[i])
		}
		if got[i] != wantVals[i] {
			t.Errorf("value[%d] = %v, want %v", i, got[i], wantVals[i])
		}
	}
	for i, v := range got {
		if ref := decodeHalfRef(dtype, binary.LittleEndian.Uint16(tt.Data[2*i:])); v != ref && !(v != v && ref != ref) {
			t.Fatalf("value[%d] = %v, independent decode gives %v", i, v, ref)
		}
	}
}

// decodeHalfRef decodes F16 with float64 arithmetic and BF16 by widening,
// without using package quant.
func decodeHalfRef(dtype string, h uint16) float32 {
	if dtype == "BF16" {
		return math.Float32frombits(uint32(h) << 16)
	}
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return float32(sign * frac / 1024 * math.Pow(2, -14))
	case 0x1f:
		if frac != 0 {
			return float32(math.NaN())
		}
		return float32(math.Inf(int(sign)))
	}
	return float32(sign * (1 + frac/1024) * math.Pow(2, float64(exp-15)))
}

func TestF16Conversion(t *testing.T) {
	p := filepath.Join(hfTiny, "smollm-tied", "model.safetensors")
	checkHalf(t, p, "model.layers.0.input_layernorm.weight", "F16",
		[]uint16{0x3b34, 0x3c63, 0x3c26, 0x3bef, 0x3c5f, 0x3bee},
		[]float32{0.900390625, 1.0966796875, 1.037109375, 0.99169921875, 1.0927734375, 0.9912109375})
	checkHalf(t, p, "model.embed_tokens.weight", "F16",
		[]uint16{0x23d2, 0x1d87, 0x9eb3, 0xa5c6, 0x2c2a, 0x9f51},
		[]float32{0.0152740478515625, 0.005397796630859375, -0.006542205810546875, -0.022552490234375, 0.0650634765625, -0.007144927978515625})
}

func TestBF16Conversion(t *testing.T) {
	p := filepath.Join(hfTiny, "llama3-ropescaled", "model.safetensors")
	checkHalf(t, p, "model.layers.0.input_layernorm.weight", "BF16",
		[]uint16{0x3f76, 0x3f79, 0x3f76, 0x3f81, 0x3f81, 0x3f86},
		[]float32{0.9609375, 0.97265625, 0.9609375, 1.0078125, 1.0078125, 1.046875})
	checkHalf(t, p, "model.embed_tokens.weight", "BF16",
		[]uint16{0xbc46, 0xbb1e, 0xbc0e, 0x3d1a, 0xbc6b, 0x3857},
		[]float32{-0.0120849609375, -0.002410888671875, -0.0086669921875, 0.03759765625, -0.01434326171875, 5.125999450683594e-05})
}

func TestF32Conversion(t *testing.T) {
	p := filepath.Join(hfTiny, "llama", "model.safetensors")
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tt, _ := f.Tensor("model.norm.weight")
	got, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if ref := math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[4*i:])); v != ref {
			t.Fatalf("value[%d] = %v, want %v", i, v, ref)
		}
	}
}

func TestOpenDirShardedIndex(t *testing.T) {
	dir := filepath.Join(hfTiny, "mistral")
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	if len(s.Names()) != len(index.WeightMap) {
		t.Fatalf("%d names, index lists %d", len(s.Names()), len(index.WeightMap))
	}
	for name, shard := range index.WeightMap {
		if !s.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
		tt, err := s.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(tt.File) != shard {
			t.Errorf("%q from %s, index says %s", name, tt.File, shard)
		}
		if len(tt.Data) != tt.NumElements()*4 {
			t.Errorf("%q: bad data length", name)
		}
	}
	for _, name := range s.Names() {
		if strings.HasPrefix(name, "grad.") {
			t.Errorf("golden tensor %q leaked into the set", name)
		}
	}
	if s.Has("grad.lm_head.weight") {
		t.Error("golden.safetensors was opened")
	}
	_, err = s.Tensor("no.such.weight")
	if err == nil || !strings.Contains(err.Error(), "no.such.weight") || !strings.Contains(err.Error(), dir) {
		t.Errorf("missing tensor error %v should name the tensor and %s", err, dir)
	}
	if s.Dir() != dir || s.Metadata()["format"] != "pt" {
		t.Errorf("Dir %q, Metadata %v", s.Dir(), s.Metadata())
	}
}

func TestOpenDirSingleIgnoresGolden(t *testing.T) {
	for _, m := range []string{"llama", "smollm-tied", "llama3-ropescaled", "qwen2", "qwen3"} {
		dir := filepath.Join(hfTiny, m)
		s, err := OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _, _ := rawHeader(t, filepath.Join(dir, "model.safetensors"))
		if len(s.Names()) != len(want) {
			t.Errorf("%s: %d tensors, want %d", m, len(s.Names()), len(want))
		}
		for _, name := range s.Names() {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: unexpected tensor %q", m, name)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
