package gguf

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/masque-ai/masque/quant"
)

// allMetadata has a value of every metadata type, arrays of every element
// type (empty ones too) and nested arrays.
func allMetadata() []KV {
	return []KV{
		{"general.architecture", "llama"},
		{"t.uint8", uint8(200)},
		{"t.int8", int8(-100)},
		{"t.uint16", uint16(60000)},
		{"t.int16", int16(-30000)},
		{"t.uint32", uint32(4000000000)},
		{"t.int32", int32(-2000000000)},
		{"t.float32", float32(3.25)},
		{"t.bool.true", true},
		{"t.bool.false", false},
		{"t.string", "héllo\x00world"},
		{"t.string.empty", ""},
		{"t.uint64", uint64(math.MaxUint64)},
		{"t.int64", int64(math.MinInt64)},
		{"t.float64", math.Pi},
		{"a.uint8", []uint8{0, 1, 255}},
		{"a.int8", []int8{-128, 0, 127}},
		{"a.uint16", []uint16{0, 65535}},
		{"a.int16", []int16{-32768, 32767}},
		{"a.uint32", []uint32{1, 2, 3}},
		{"a.int32", []int32{-1, 0, 1}},
		{"a.float32", []float32{0.5, -1.5, float32(math.Inf(1))}},
		{"a.bool", []bool{true, false, true}},
		{"a.string", []string{"a", "", "ccc", "日本"}},
		{"a.uint64", []uint64{math.MaxUint64, 0}},
		{"a.int64", []int64{math.MinInt64, math.MaxInt64}},
		{"a.float64", []float64{math.E, -0.0}},
		{"a.empty.string", []string{}},
		{"a.empty.float32", []float32{}},
		{"a.nested", []any{[]int32{1, 2}, []string{"x"}, []any{[]uint8{7}}}},
		{"a.nested.empty", []any{}},
	}
}

// tensorsOfEveryType returns one tensor of each type, with 1 to 4 dimensions,
// holding quantised random data.
func tensorsOfEveryType() []WriteTensor {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := map[quant.DType][]int{
		quant.F32:  {3},
		quant.F16:  {5, 2},
		quant.BF16: {4, 3, 2},
		quant.Q8_0: {64, 3},
		quant.Q4_0: {32, 2, 2, 2},
		quant.Q4_K: {256, 2},
		quant.Q6_K: {512, 1, 3},
	}
	var out []WriteTensor
	for _, ty := range []quant.DType{quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q6_K} {
		shape := shapes[ty]
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		rb, _ := ty.RowBytes(n)
		data := make([]byte, rb)
		if err := quant.QuantizeRow(ty, x, data); err != nil {
			panic(err)
		}
		out = append(out, WriteTensor{Name: "t." + ty.String(), Shape: shape, Type: ty, Data: data})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 1, 64, 4096} {
		meta := allMetadata()
		if align != 0 {
			meta = append(meta, KV{AlignmentKey, align})
		}
		tensors := tensorsOfEveryType()
		path := filepath.Join(t.TempDir(), "rt.gguf")
		if err := Write(path, meta, tensors); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		wantAlign := int(align)
		if align == 0 {
			wantAlign = DefaultAlignment
		}
		if f.Version != 3 || f.Alignment != wantAlign || f.DataOffset%int64(wantAlign) != 0 {
			t.Errorf("version %d, alignment %d, data offset %d", f.Version, f.Alignment, f.DataOffset)
		}
		if len(f.KV) != len(meta) {
			t.Fatalf("read %d metadata entries, wrote %d", len(f.KV), len(meta))
		}
		for i, kv := range meta {
			if f.KV[i].Key != kv.Key {
				t.Errorf("entry %d is %q, want %q (order must be kept)", i, f.KV[i].Key, kv.Key)
			}
			got, want := f.Metadata[kv.Key], kv.Value
			if !reflect.DeepEqual(got, want) && !(kv.Key == "a.float64" && sameFloat64s(got, want)) {
				t.Errorf("%s = %#v, want %#v", kv.Key, got, want)
			}
		}
		if len(f.Tensors) != len(tensors) {
			t.Fatalf("read %d tensors, wrote %d", len(f.Tensors), len(tensors))
		}
		for i, wt := range tensors {
			ti := f.Tensors[i]
			if ti.Name != wt.Name || !reflect.DeepEqual(ti.Shape, wt.Shape) || ti.Type != wt.Type ||
				ti.GGMLType != GGMLType(wt.Type) || ti.Offset%uint64(wantAlign) != 0 || !bytes.Equal(ti.Data, wt.Data) {
				t.Errorf("tensor %d: got %s %v %v (ggml %d) at %d, want %s %v %v", i, ti.Name, ti.Shape, ti.Type, ti.GGMLType, ti.Offset, wt.Name, wt.Shape, wt.Type)
			}
			if p, ok := f.Tensor(wt.Name); !ok || p != &f.Tensors[i] {
				t.Errorf("Tensor(%q) = %v, %v", wt.Name, p, ok)
			}
			if cap(ti.Data) != len(ti.Data) {
				t.Errorf("tensor %s: Data has spare capacity %d", ti.Name, cap(ti.Data))
			}
		}
		if _, ok := f.Tensor("missing"); ok {
			t.Error("Tensor(missing) found something")
		}
		// Parse on the raw bytes must agree with Open.
		raw, _ := os.ReadFile(path)
		p, err := Parse("raw", raw)
		if err != nil || len(p.Tensors) != len(f.Tensors) || p.DataOffset != f.DataOffset {
			t.Errorf("Parse: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if f.Tensors[0].Data != nil || f.Metadata["t.string"] != "héllo\x00world" {
			t.Error("after Close, tensor data should be dropped and metadata kept")
		}
	}
}

func sameFloat64s(a, b any) bool {
	x, ok1 := a.([]float64)
	y, ok2 := b.([]float64)
	if !ok1 || !ok2 || len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
			return false
		}
	}
	return true
}

// TestWriteLayout checks the exact bytes of a small file against the GGUF
// layout written out by hand.
func TestWriteLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.gguf")
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	err := Write(path, []KV{{"k", uint32(7)}, {"s", []string{"ab"}}}, []WriteTensor{
		{Name: "a", Shape: []int{2}, Type: quant.F32, Data: data},
		{Name: "b", Shape: []int{1}, Type: quant.F32, Data: data[:4]},
	})
	if err != nil {
		t.Fatal(err)
	}
	var w fileBuilder
	w.raw("GGUF").u32(3).u64(2).u64(2)
	w.str("k").u32(uint32(TypeUint32)).u32(7)
	w.str("s").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1).str("ab")
	w.str("a").u32(1).u64(2).u32(0).u64(0)
	w.str("b").u32(1).u64(1).u32(0).u64(32)
	w.pad(32)
	w.raw(string(data)).pad(32).raw(string(data[:4])).pad(32)
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, w.b) {
		t.Errorf("file bytes\n got %x\nwant %x", got, w.b)
	}
}

func TestGetters(t *testing.T) {
	f := &File{Metadata: map[string]any{}}
	for _, kv := range allMetadata() {
		f.Metadata[kv.Key] = kv.Value
	}
	f.Metadata["neg8"] = int8(-3)
	f.Metadata["big"] = uint64(math.MaxInt64 + 1)
	f.Metadata["f64s"] = []float64{1.5, 2}
	f.Metadata["u8s"] = []uint8{1, 2}
	f.Metadata["bigs"] = []uint64{math.MaxInt64 + 1}
	f.Metadata["wide"] = []int64{1 << 40}

	type res struct {
		v  any
		ok bool
	}
	pair := func(v any, ok bool) res { return res{v, ok} }
	cases := []struct {
		name string
		got  res
		want res
	}{
		{"String", pair(f.String("general.architecture")), res{"llama", true}},
		{"String wrong type", pair(f.String("t.uint8")), res{"", false}},
		{"String missing", pair(f.String("nope")), res{"", false}},
		{"Bool", pair(f.Bool("t.bool.true")), res{true, true}},
		{"Bool wrong type", pair(f.Bool("t.string")), res{false, false}},
		{"Uint uint8", pair(f.Uint("t.uint8")), res{uint64(200), true}},
		{"Uint uint64", pair(f.Uint("t.uint64")), res{uint64(math.MaxUint64), true}},
		{"Uint int16 negative", pair(f.Uint("t.int16")), res{uint64(0), false}},
		{"Uint float", pair(f.Uint("t.float32")), res{uint64(0), false}},
		{"Int int8", pair(f.Int("neg8")), res{int64(-3), true}},
		{"Int uint32", pair(f.Int("t.uint32")), res{int64(4000000000), true}},
		{"Int uint64 too big", pair(f.Int("big")), res{int64(0), false}},
		{"Int string", pair(f.Int("t.string")), res{int64(0), false}},
		{"Float float32", pair(f.Float("t.float32")), res{3.25, true}},
		{"Float float64", pair(f.Float("t.float64")), res{math.Pi, true}},
		{"Float int", pair(f.Float("t.int32")), res{-2e9, true}},
		{"Float uint64", pair(f.Float("t.uint64")), res{float64(math.MaxUint64), true}},
		{"Float bool", pair(f.Float("t.bool.true")), res{0.0, false}},
		{"Strings", pair(f.Strings("a.string")), res{[]string{"a", "", "ccc", "日本"}, true}},
		{"Strings wrong type", pair(f.Strings("a.int32")), res{[]string(nil), false}},
		{"Float32s", pair(f.Float32s("a.empty.float32")), res{[]float32{}, true}},
		{"Float32s from float64", pair(f.Float32s("f64s")), res{[]float32{1.5, 2}, true}},
		{"Float32s wrong type", pair(f.Float32s("a.int32")), res{[]float32(nil), false}},
		{"Int32s", pair(f.Int32s("a.int32")), res{[]int32{-1, 0, 1}, true}},
		{"Int32s from uint8", pair(f.Int32s("u8s")), res{[]int32{1, 2}, true}},
		{"Int32s too wide", pair(f.Int32s("wide")), res{[]int32(nil), false}},
		{"Ints uint16", pair(f.Ints("a.uint16")), res{[]int64{0, 65535}, true}},
		{"Ints int8", pair(f.Ints("a.int8")), res{[]int64{-128, 0, 127}, true}},
		{"Ints uint64 too big", pair(f.Ints("bigs")), res{[]int64(nil), false}},
		{"Ints strings", pair(f.Ints("a.string")), res{[]int64(nil), false}},
	}
	for _, c := range cases {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if v, ok := f.Value("t.int8"); !ok || v != int8(-100) {
		t.Errorf("Value = %v, %v", v, ok)
	}
}

func TestWriteErrors(t *testing.T) {
	good := WriteTensor{Name: "w", Shape: []int{32, 2}, Type: quant.Q8_0, Data: make([]byte, 68)}
	cases := []struct {
		name    string
		meta    []KV
		tensors []WriteTensor
		want    string
	}{
		{"duplicate key", []KV{{"a", uint8(1)}, {"a", uint8(2)}}, nil, "duplicate metadata key"},
		{"int value", []KV{{"a", 5}}, nil, "unsupported value type int"},
		{"map value", []KV{{"a", map[string]int{}}}, nil, "unsupported value type"},
		{"mixed array", []KV{{"a", []any{uint8(1), "x"}}}, nil, "mixes"},
		{"bad element", []KV{{"a", []any{struct{}{}}}}, nil, "unsupported type"},
		{"too deep", []KV{{"a", []any{[]any{[]any{[]any{[]any{[]uint8{}}}}}}}}, nil, "nest"},
		{"alignment type", []KV{{AlignmentKey, uint64(32)}}, nil, "power of two"},
		{"alignment value", []KV{{AlignmentKey, uint32(48)}}, nil, "power of two"},
		{"duplicate tensor", nil, []WriteTensor{good, good}, "duplicate tensor"},
		{"size mismatch", nil, []WriteTensor{{Name: "w", Shape: []int{32}, Type: quant.Q8_0, Data: make([]byte, 35)}}, "needs 34 bytes"},
		{"row not whole blocks", nil, []WriteTensor{{Name: "w", Shape: []int{33}, Type: quant.Q8_0}}, "multiple of the q8_0 block size"},
		{"five dims", nil, []WriteTensor{{Name: "w", Shape: []int{1, 1, 1, 1, 1}, Type: quant.F32}}, "5 dimensions"},
		{"no dims", nil, []WriteTensor{{Name: "w", Type: quant.F32}}, "no dimensions"},
		{"zero dim", nil, []WriteTensor{{Name: "w", Shape: []int{4, 0}, Type: quant.F32}}, "size 0"},
		{"negative dim", nil, []WriteTensor{{Name: "w", Shape: []int{-4}, Type: quant.F32}}, "size -4"},
		{"overflow", nil, []WriteTensor{{Name: "w", Shape: []int{math.MaxInt, 4}, Type: quant.F32}}, "overflows"},
		{"bad dtype", nil, []WriteTensor{{Name: "w", Shape: []int{1}, Type: quant.DType(99)}}, "invalid type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.gguf")
			err := Write(path, c.meta, c.tensors)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming the file and containing %q", err, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left files behind: %v", ents)
			}
		})
	}
}

func TestWriterStreaming(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.gguf")
	if err := os.WriteFile(path, []byte("old contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	specs := []WriteTensor{
		{Name: "a", Shape: []int{8}, Type: quant.F16},
		{Name: "b", Shape: []int{32}, Type: quant.Q4_0},
	}
	// Out-of-order, wrong-size and extra tensors fail and leave the old file.
	for _, bad := range []func(w *Writer) error{
		func(w *Writer) error { return w.WriteTensor("b", make([]byte, 18)) },
		func(w *Writer) error { return w.WriteTensor("a", make([]byte, 15)) },
		func(w *Writer) error { return w.Close() }, // nothing written
		func(w *Writer) error {
			w.WriteTensor("a", make([]byte, 16))
			w.WriteTensor("b", make([]byte, 18))
			return w.WriteTensor("c", nil)
		},
	} {
		w, err := Create(path, nil, specs)
		if err != nil {
			t.Fatal(err)
		}
		if err := bad(w); err == nil {
			t.Error("expected an error")
		}
		w.Abort()
		if err := w.Close(); err == nil {
			t.Error("Close after Abort succeeded")
		}
		if b, _ := os.ReadFile(path); string(b) != "old contents" {
			t.Fatalf("target changed to %q", b)
		}
	}
	w, err := Create(path, []KV{{"x", "y"}}, specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", make([]byte, 18)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", nil); err == nil {
		t.Error("write after Close succeeded")
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s, _ := f.String("x"); s != "y" || len(f.Tensors) != 2 {
		t.Errorf("read back %v", f.KV)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("opening a directory succeeded")
	}
	empty := filepath.Join(dir, "empty.gguf")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: %v", err)
	}
}

func TestDequantize(t *testing.T) {
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i) - 31.5
	}
	data := make([]byte, 2*64)
	quant.QuantizeRow(quant.BF16, x, data)
	ti := TensorInfo{Name: "t", Shape: []int{32, 2}, Type: quant.BF16, Data: data}
	y, err := ti.Dequantize()
	if err != nil || !reflect.DeepEqual(x, y) || ti.Elements() != 64 || ti.Rows() != 2 {
		t.Errorf("Dequantize = %v, %v", y, err)
	}
	ti.Data = data[:10]
	if _, err := ti.Dequantize(); err == nil {
		t.Error("short data accepted")
	}
}

func TestTypeNames(t *testing.T) {
	for _, ty := range []quant.DType{quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q6_K} {
		id := GGMLType(ty)
		back, ok := DTypeFromGGML(id)
		if !ok || back != ty || GGMLTypeName(id) != ty.String() {
			t.Errorf("%v: id %d, back %v %v, name %q", ty, id, back, ok, GGMLTypeName(id))
		}
	}
	if GGMLTypeName(3) != "q4_1" || GGMLTypeName(1000) != "unknown" {
		t.Error("GGMLTypeName")
	}
	if TypeFloat64.String() != "float64" || ValueType(99).String() != "valuetype(99)" {
		t.Error("ValueType.String")
	}
}

// BenchmarkOpenVocab opens a file with a 150k-entry tokenizer, the largest
// metadata real models carry.
func BenchmarkOpenVocab(b *testing.B) {
	const n = 150000
	tokens, merges := make([]string, n), make([]string, n)
	scores, types := make([]float32, n), make([]int32, n)
	for i := range tokens {
		tokens[i] = "tok" + strings.Repeat("x", i%13)
		merges[i] = "a b"
		scores[i] = float32(i)
		types[i] = 1
	}
	path := filepath.Join(b.TempDir(), "v.gguf")
	meta := []KV{{"tokenizer.ggml.tokens", tokens}, {"tokenizer.ggml.merges", merges},
		{"tokenizer.ggml.scores", scores}, {"tokenizer.ggml.token_type", types}}
	if err := Write(path, meta, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// TestVersion2 reads a version-2 file (the same layout as version 3, which
// only added big-endian variants).
func TestVersion2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.gguf")
	if err := Write(path, []KV{{"k", "v"}}, tensorsOfEveryType()[:1]); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	b[4] = 2
	f, err := Parse("v2", b)
	if err != nil || f.Version != 2 || len(f.Tensors) != 1 {
		t.Fatalf("version-2 file: %v", err)
	}
}
