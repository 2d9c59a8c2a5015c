package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// rawFile assembles a safetensors file from a header string and data.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func i64Bytes(v ...int64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

func sampleTensors() []WriteTensor {
	return []WriteTensor{
		{Name: "w.f32", DType: "F32", Shape: []int{2, 3}, Data: F32Bytes([]float32{1, -2, 3.5, 0, float32(math.Inf(1)), 1e-30})},
		{Name: "a.f16", DType: "F16", Shape: []int{3}, Data: F16Bytes([]float32{0.5, -65504, 6e-8})},
		{Name: "empty", DType: "F32", Shape: []int{0, 4}, Data: nil},
		{Name: "b.bf16", DType: "BF16", Shape: []int{2}, Data: BF16Bytes([]float32{1.5, -3})},
		{Name: "scalar.f64", DType: "F64", Shape: []int{}, Data: F64Bytes([]float64{math.Pi})},
		{Name: "ids \"quoted\" <&>", DType: "I64", Shape: []int{1, 2}, Data: i64Bytes(7, -9)},
		{Name: "mask", DType: "BOOL", Shape: []int{5}, Data: []byte{1, 0, 1, 1, 0}},
	}
}

func TestWriteRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rt.safetensors")
	in := sampleTensors()
	meta := map[string]string{"format": "pt", "note": "ünïcode \"and\" quotes\n"}
	if err := Write(p, in, meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	if h := strings.TrimRight(string(raw[8:8+n]), " "); !strings.HasSuffix(h, "}") {
		t.Errorf("header padding is not spaces: %q", raw[8:8+n])
	}

	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wantNames []string
	for _, w := range in {
		wantNames = append(wantNames, w.Name)
	}
	if got := f.Names(); !slices.Equal(got, wantNames) {
		t.Errorf("Names() = %q, want %q", got, wantNames)
	}
	for _, w := range in {
		tt, ok := f.Tensor(w.Name)
		if !ok {
			t.Fatalf("missing %q", w.Name)
		}
		if tt.DType != w.DType || !slices.Equal(tt.Shape, w.Shape) || !bytes.Equal(tt.Data, w.Data) || tt.File != p {
			t.Errorf("%q: got %s %v %x, want %s %v %x", w.Name, tt.DType, tt.Shape, tt.Data, w.DType, w.Shape, w.Data)
		}
	}
	if got := f.Metadata(); len(got) != len(meta) || got["note"] != meta["note"] || got["format"] != "pt" {
		t.Errorf("metadata %q, want %q", got, meta)
	}

	check := func(name string, want []float32) {
		t.Helper()
		tt, _ := f.Tensor(name)
		got, err := tt.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Float32s() = %v, want %v", name, got, want)
		}
	}
	check("w.f32", []float32{1, -2, 3.5, 0, float32(math.Inf(1)), 1e-30})
	check("a.f16", []float32{0.5, -65504, 5.9604645e-08})
	check("b.bf16", []float32{1.5, -3})
	check("scalar.f64", []float32{math.Pi})
	check("empty", []float32{})

	ids, _ := f.Tensor("ids \"quoted\" <&>")
	if _, err := ids.Float32s(); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "ids") {
		t.Errorf("Float32s on I64: %v", err)
	}
	if _, err := ids.Type(); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "ids") {
		t.Errorf("Type on I64: %v", err)
	}
	sc, _ := f.Tensor("scalar.f64")
	if sc.NumElements() != 1 {
		t.Errorf("scalar NumElements = %d", sc.NumElements())
	}
	// The returned description is the caller's copy.
	sc.Shape = append(sc.Shape, 99)
	if again, _ := f.Tensor("w.f32"); again.Shape[0] != 2 {
		t.Error("Tensor returned shared shape")
	}
}

func TestWriteEmptyAndNoMetadata(t *testing.T) {
	p := filepath.Join(t.TempDir(), "e.safetensors")
	if err := Write(p, nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != 0 || len(f.Metadata()) != 0 {
		t.Errorf("names %v meta %v", f.Names(), f.Metadata())
	}
}

func TestWriteRejectsBadInputKeepsOldFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keep.safetensors")
	if err := Write(p, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	bad := []struct {
		phrase string
		ts     []WriteTensor
	}{
		{"unknown dtype", []WriteTensor{{Name: "x", DType: "F128", Shape: []int{1}, Data: make([]byte, 16)}}},
		{"needs", []WriteTensor{{Name: "x", DType: "F32", Shape: []int{3}, Data: make([]byte, 8)}}},
		{"negative", []WriteTensor{{Name: "x", DType: "F32", Shape: []int{-1}, Data: nil}}},
		{"duplicate", []WriteTensor{{Name: "x", DType: "U8", Shape: []int{1}, Data: []byte{1}}, {Name: "x", DType: "U8", Shape: []int{1}, Data: []byte{1}}}},
		{"reserved", []WriteTensor{{Name: "__metadata__", DType: "U8", Shape: []int{1}, Data: []byte{1}}}},
		{"overflows", []WriteTensor{{Name: "x", DType: "U8", Shape: []int{math.MaxInt / 2, 3}, Data: nil}}},
	}
	for _, c := range bad {
		err := Write(p, c.ts, nil)
		if err == nil || !strings.Contains(err.Error(), c.phrase) || !strings.Contains(err.Error(), p) {
			t.Errorf("Write(%s): err = %v", c.phrase, err)
		}
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Error("failed Write changed the existing file")
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("leftover files: %v", ents)
	}
}

func TestCloseReleases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.safetensors")
	if err := Write(p, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := f.Tensor("w.f32"); ok {
		t.Error("Tensor after Close succeeded")
	}
	if len(f.Names()) != 0 {
		t.Error("Names after Close")
	}
}

func TestWriteOverOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows cannot rename over an open file")
	}
	p := filepath.Join(t.TempDir(), "live.safetensors")
	one := []WriteTensor{{Name: "x", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{1, 2})}}
	if err := Write(p, one, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	two := []WriteTensor{{Name: "x", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{3, 4})}}
	if err := Write(p, two, nil); err != nil {
		t.Fatal(err)
	}
	old, _ := f.Tensor("x")
	if v, _ := old.Float32s(); !slices.Equal(v, []float32{1, 2}) {
		t.Errorf("open file sees %v after replacement, want the old [1 2]", v)
	}
	g, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cur, _ := g.Tensor("x")
	if v, _ := cur.Float32s(); !slices.Equal(v, []float32{3, 4}) {
		t.Errorf("reopened file holds %v, want [3 4]", v)
	}
}

func TestGapsAllowed(t *testing.T) {
	h := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"U8","shape":[1],"data_offsets":[20,21]}}`
	p := writeTemp(t, "gap.safetensors", rawFile(h, make([]byte, 32)))
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !slices.Equal(f.Names(), []string{"a", "b"}) {
		t.Errorf("names %v", f.Names())
	}
}

func TestOpenCorrupt(t *testing.T) {
	valid := `{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[4],"data_offsets":[16,24]}}`
	data := make([]byte, 24)
	good := rawFile(valid, data)
	if p := writeTemp(t, "ok.safetensors", good); true {
		f, err := Open(p)
		if err != nil {
			t.Fatalf("base file invalid: %v", err)
		}
		f.Close()
	}
	withLen := func(n uint64) []byte {
		b := slices.Clone(good)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	hdr := func(entries string) []byte { return rawFile("{"+entries+"}", data) }
	cases := []struct {
		name   string
		file   []byte
		phrase string
	}{
		{"empty file", nil, "too short"},
		{"truncated to 5 bytes", good[:5], "too short"},
		{"truncated data", good[:len(good)-4], "beyond the data section"},
		{"truncated header", good[:20], "exceeds the file's size"},
		{"header length beyond file", withLen(uint64(len(good))), "exceeds the file's size"},
		{"header length absurd", withLen(1 << 40), "beyond the limit"},
		{"header length max uint64", withLen(math.MaxUint64), "beyond the limit"},
		{"offsets out of range", hdr(`"a":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}`), "beyond the data section"},
		{"offsets descending", hdr(`"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}`), "two ascending integers"},
		{"offsets negative", hdr(`"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}`), "two ascending integers"},
		{"offsets three values", hdr(`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}`), "two ascending integers"},
		{"offsets missing", hdr(`"a":{"dtype":"F32","shape":[1]}`), "two ascending integers"},
		{"offsets fractional", hdr(`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}`), "two ascending integers"},
		{"offsets strings", hdr(`"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}`), "two ascending integers"},
		{"offsets huge", hdr(`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999999]}`), "two ascending integers"},
		{"overlapping tensors", hdr(`"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}`), "overlap"},
		{"contained tensor", hdr(`"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"b":{"dtype":"U8","shape":[1],"data_offsets":[23,24]}`), "overlap"},
		{"wrong byte count", hdr(`"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}`), "wrong byte count"},
		{"wrong byte count for dtype", hdr(`"a":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}`), "wrong byte count"},
		{"bad JSON", rawFile(`{"a":{"dtype":"F32",`, data), "not valid JSON"},
		{"bad JSON bytes", rawFile("\x00\x01\x02\x03", data), "not valid JSON"},
		{"trailing JSON", rawFile(`{} {}`, data), "not valid JSON"},
		{"header not an object", rawFile(`[1,2]`, data), "not a JSON object"},
		{"entry not an object", hdr(`"a":[1,2]`), "entry is not a JSON object"},
		{"unknown dtype", hdr(`"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}`), "unknown dtype"},
		{"dtype not a string", hdr(`"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}`), "bad entry"},
		{"missing dtype", hdr(`"a":{"shape":[1],"data_offsets":[0,4]}`), "missing dtype"},
		{"missing shape", hdr(`"a":{"dtype":"F32","data_offsets":[0,4]}`), "missing shape"},
		{"negative dims", hdr(`"a":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}`), "negative"},
		{"fractional dims", hdr(`"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}`), "not an integer"},
		{"string dims", hdr(`"a":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}`), "not an integer"},
		{"huge dims overflow", hdr(`"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}`), "overflows"},
		{"byte count overflow", hdr(`"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}`), "overflows"},
		{"duplicate names", hdr(`"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}`), "duplicate tensor name"},
		{"metadata not strings", hdr(`"__metadata__":{"n":1}`), "__metadata__"},
		{"metadata not an object", hdr(`"__metadata__":"x"`), "__metadata__"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "bad.safetensors", c.file)
			f, err := Open(p)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want error with %q", c.phrase)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, c.phrase) {
				t.Errorf("error %q should contain the path and %q", msg, c.phrase)
			}
		})
	}
}

func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open(dir): %v", err)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := Open(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing): %v", err)
	}
}

// copyDir copies the regular files of src into a new temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestOpenDirIndexErrors(t *testing.T) {
	src := filepath.Join(hfTiny, "mistral")
	shard1 := "model-00001-of-00002.safetensors"
	shard2 := "model-00002-of-00002.safetensors"
	cases := []struct {
		name   string
		change func(dir string)
		phrase string
	}{
		{"malformed JSON", func(dir string) {
			os.WriteFile(filepath.Join(dir, indexName), []byte(`{"weight_map": {`), 0o644)
		}, "malformed index"},
		{"no weight_map", func(dir string) {
			os.WriteFile(filepath.Join(dir, indexName), []byte(`{"metadata": {}}`), 0o644)
		}, "no weight_map"},
		{"shard missing", func(dir string) {
			os.Remove(filepath.Join(dir, shard2))
		}, "missing"},
		{"tensor absent from shard", func(dir string) {
			os.WriteFile(filepath.Join(dir, indexName), []byte(`{"weight_map": {"lm_head.weight": "`+shard1+`", "model.norm.weight": "`+shard1+`"}}`), 0o644)
		}, "absent from shard"},
		{"shard outside folder", func(dir string) {
			os.WriteFile(filepath.Join(dir, indexName), []byte(`{"weight_map": {"x": "../elsewhere.safetensors"}}`), 0o644)
		}, "invalid shard file name"},
		{"corrupt shard", func(dir string) {
			os.WriteFile(filepath.Join(dir, shard1), []byte("garbage!!"), 0o644)
		}, "beyond the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, src)
			c.change(dir)
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatalf("OpenDir succeeded, want %q", c.phrase)
			}
			if !strings.Contains(err.Error(), c.phrase) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q should contain %q and the folder", err, c.phrase)
			}
		})
	}
}

func TestOpenDirGlobShards(t *testing.T) {
	dir := t.TempDir()
	w := func(name string, ts ...WriteTensor) {
		if err := Write(filepath.Join(dir, name), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	u8 := func(name string) WriteTensor {
		return WriteTensor{Name: name, DType: "U8", Shape: []int{1}, Data: []byte{1}}
	}
	w("model-00002-of-00002.safetensors", u8("c"), u8("d"))
	w("model-00001-of-00002.safetensors", u8("b"), u8("a"))
	// Neither of these may be opened: they would clash with the model's names.
	w("golden.safetensors", u8("a"), u8("golden"))
	w("adapter_model.safetensors", u8("b"), u8("adapter"))
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"b", "a", "c", "d"}) {
		t.Errorf("Names() = %v", got)
	}
	if s.Has("golden") || s.Has("adapter") {
		t.Error("opened a non-model file")
	}
	s.Close()
	if _, err := s.Tensor("a"); err == nil {
		t.Error("Tensor on closed set succeeded")
	}

	w("model-00003-of-00003.safetensors", u8("e"))
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("mixed shard counts: %v", err)
	}
	os.Remove(filepath.Join(dir, "model-00003-of-00003.safetensors"))

	os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), "shard 2 of 2 is missing") {
		t.Errorf("missing shard: %v", err)
	}
	w("model-00002-of-00002.safetensors", u8("a"))
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), `"a" appears in both`) {
		t.Errorf("duplicate across shards: %v", err)
	}
}

func TestOpenDirNothing(t *testing.T) {
	dir := t.TempDir()
	Write(filepath.Join(dir, "golden.safetensors"), nil, nil)
	Write(filepath.Join(dir, "adapter_model.safetensors"), nil, nil)
	_, err := OpenDir(dir)
	if err == nil || !strings.Contains(err.Error(), "no model weights") || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenDir on a folder without weights: %v", err)
	}
	if _, err := OpenDir(filepath.Join(dir, "golden.safetensors")); err == nil {
		t.Error("OpenDir on a file succeeded")
	}
}

func TestDecodeFloat32s(t *testing.T) {
	if _, err := DecodeFloat32s("F32", make([]byte, 6)); err == nil {
		t.Error("ragged F32 accepted")
	}
	if _, err := DecodeFloat32s("I32", make([]byte, 4)); err == nil {
		t.Error("I32 accepted")
	}
	tt := &Tensor{Name: "x", DType: "F32", Shape: []int{3}, Data: make([]byte, 8), File: "f"}
	if _, err := tt.Float32s(); err == nil {
		t.Error("short data accepted")
	}
}

// FuzzOpen checks that Open never panics and that whatever it accepts is
// consistent. When fuzzing, pass a small -fuzzminimizetime (e.g. 200x):
// minimising the larger seeds with the default 60s per input stalls progress.
func FuzzOpen(f *testing.F) {
	var buf bytes.Buffer
	p := filepath.Join(f.TempDir(), "seed.safetensors")
	if err := Write(p, sampleTensors(), map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(seed[:12])
	f.Add(rawFile(`{}`, nil))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"a":{"dtype":"BF16","shape":[-1],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Add([]byte{})
	buf.WriteString("\xff\xff\xff\xff\xff\xff\xff\xff{}")
	f.Add(buf.Bytes())
	// Executions within one fuzzing process run one at a time, so they can
	// share a path; a fresh t.TempDir per input would make fuzzing crawl.
	fuzzPath := filepath.Join(f.TempDir(), "fuzz.safetensors")
	f.Fuzz(func(t *testing.T, b []byte) {
		p := fuzzPath
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		defer file.Close()
		for _, name := range file.Names() {
			tt, ok := file.Tensor(name)
			if !ok {
				t.Fatalf("listed tensor %q missing", name)
			}
			if len(tt.Data) != tt.NumElements()*DTypeSize(tt.DType) {
				t.Fatalf("%q: %d bytes for %d × %s", name, len(tt.Data), tt.NumElements(), tt.DType)
			}
			if _, err := tt.Type(); err == nil {
				if _, err := tt.Float32s(); err != nil {
					t.Fatalf("%q: %v", name, err)
				}
			}
		}
		_ = file.Metadata()
	})
}

func Example() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	err = Write(path, []WriteTensor{
		{Name: "embed", DType: "BF16", Shape: []int{2, 2}, Data: BF16Bytes([]float32{1, 2, 3, 4})},
		{Name: "bias", DType: "F32", Shape: []int{2}, Data: F32Bytes([]float32{0.5, -0.5})},
	}, map[string]string{"format": "pt"})
	if err != nil {
		panic(err)
	}

	weights, err := OpenDir(dir)
	if err != nil {
		panic(err)
	}
	defer weights.Close()
	for _, name := range weights.Names() {
		t, _ := weights.Tensor(name)
		v, _ := t.Float32s()
		fmt.Println(name, t.DType, t.Shape, v)
	}
	// Output:
	// embed BF16 [2 2] [1 2 3 4]
	// bias F32 [2] [0.5 -0.5]
}
