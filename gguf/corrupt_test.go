package gguf

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fileBuilder assembles GGUF bytes field by field, so tests can write
// anything, including invalid files.
type fileBuilder struct{ b []byte }

func (w *fileBuilder) raw(s string) *fileBuilder { w.b = append(w.b, s...); return w }
func (w *fileBuilder) u8(v uint8) *fileBuilder   { w.b = append(w.b, v); return w }
func (w *fileBuilder) u32(v uint32) *fileBuilder {
	w.b = binary.LittleEndian.AppendUint32(w.b, v)
	return w
}
func (w *fileBuilder) u64(v uint64) *fileBuilder {
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
	return w
}
func (w *fileBuilder) str(s string) *fileBuilder { return w.u64(uint64(len(s))).raw(s) }
func (w *fileBuilder) pad(a int) *fileBuilder {
	for len(w.b)%a != 0 {
		w.b = append(w.b, 0)
	}
	return w
}

// header starts a version-3 file with the given counts.
func header(nTensors, nKV uint64) *fileBuilder {
	w := &fileBuilder{}
	return w.raw(Magic).u32(3).u64(nTensors).u64(nKV)
}

// oneTensor is a valid file holding a single F32 tensor "w" of shape {4},
// with the tensor description written by desc.
func oneTensor(desc func(w *fileBuilder)) []byte {
	w := header(1, 0)
	desc(w)
	w.pad(32).raw(strings.Repeat("\x00", 16))
	return w.b
}

// Error-handling table: every case is a malformed file and a fragment the
// error must contain. All errors must also name the file.
var corruptCases = []struct {
	name string
	data []byte
	want string
}{
	{"empty", nil, "truncated"},
	{"short", []byte("GGU"), "truncated"},
	{"bad magic", (&fileBuilder{}).raw("GGML").u32(3).u64(0).u64(0).b, "not a GGUF file"},
	{"version 1", (&fileBuilder{}).raw(Magic).u32(1).u64(0).u64(0).b, "unsupported GGUF version 1"},
	{"version 4", (&fileBuilder{}).raw(Magic).u32(4).u64(0).u64(0).b, "unsupported GGUF version 4"},
	{"big-endian", (&fileBuilder{}).raw(Magic).u32(3 << 24).u64(0).u64(0).b, "big-endian"},
	{"header cut", (&fileBuilder{}).raw(Magic).u32(3).u64(0).u32(0).b, "truncated"},
	{"absurd tensor count", header(1<<40, 0).b, "tensor count"},
	{"absurd kv count", header(0, 1<<62).b, "metadata count"},
	{"kv count beyond file", header(0, 3).str("a").u32(uint32(TypeUint8)).u8(1).b, "metadata count 3 is more than the file could hold"},
	{"value cut", header(0, 2).str("a").u32(uint32(TypeUint8)).u8(1).str("abcde").u32(uint32(TypeUint64)).u32(0).b, "truncated: value of abcde"},
	{"absurd key length", header(0, 1).u64(1 << 60).raw("xxxxxxxxxxxxxxx").b, "metadata key length"},
	{"absurd string length", header(0, 1).str("k").u32(uint32(TypeString)).u64(math.MaxUint64).b, "length"},
	{"absurd array length", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1 << 61).b, "array length"},
	{"absurd string array", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).b, "array length"},
	{"string element too long", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("ok").u64(99).b, "element 1 of k"},
	{"array cut", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint16)).u64(4).u32(0).b, "array length"},
	{"unknown value type", header(0, 1).str("k").u32(13).u64(0).b, "unknown value type 13"},
	{"unknown element type", header(0, 1).str("k").u32(uint32(TypeArray)).u32(77).u64(0).b, "unknown value type 77"},
	{"arrays too deep", func() []byte {
		w := header(0, 1).str("k").u32(uint32(TypeArray))
		for range 6 {
			w.u32(uint32(TypeArray)).u64(1)
		}
		return w.u32(uint32(TypeUint8)).u64(0).raw(strings.Repeat("\x00", 64)).b
	}(), "nests arrays more than"},
	{"bool value", header(0, 1).str("k").u32(uint32(TypeBool)).u8(2).b, "bool value 2"},
	{"bool element", header(0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeBool)).u64(2).u8(1).u8(9).b, "bool element 1"},
	{"duplicate key", header(0, 2).str("k").u32(uint32(TypeUint8)).u8(1).str("k").u32(uint32(TypeUint8)).u8(2).b, "duplicate metadata key"},
	{"alignment type", header(0, 1).str(AlignmentKey).u32(uint32(TypeUint64)).u64(32).b, "must be a uint32"},
	{"alignment not power of two", header(0, 1).str(AlignmentKey).u32(uint32(TypeUint32)).u32(24).b, "not a power of two"},
	{"alignment zero", header(0, 1).str(AlignmentKey).u32(uint32(TypeUint32)).u32(0).b, "not a power of two"},
	{"five dims", oneTensor(func(w *fileBuilder) { w.str("w").u32(5).u64(1).u64(1).u64(1).u64(1).u64(4).u32(0).u64(0) }), "5 dimensions"},
	{"no dims", oneTensor(func(w *fileBuilder) { w.str("w").u32(0).u32(0).u64(0).u64(0) }), "0 dimensions"},
	{"zero dimension", oneTensor(func(w *fileBuilder) { w.str("w").u32(2).u64(4).u64(0).u32(0).u64(0) }), "dimension 1 has invalid size 0"},
	{"negative dimension", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(1 << 63).u32(0).u64(0) }), "invalid size"},
	{"element overflow", oneTensor(func(w *fileBuilder) { w.str("w").u32(3).u64(1 << 32).u64(1 << 32).u64(1 << 32).u32(0).u64(0) }), "overflows"},
	{"byte size overflow", oneTensor(func(w *fileBuilder) { w.str("w").u32(2).u64(1 << 32).u64(1 << 30).u32(0).u64(0) }), "overflows"},
	{"unsupported type", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(256).u32(16).u64(0) }), "tensor w has GGML type iq2_xxs, which masque does not support (type id 16)"},
	{"unknown type", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(4).u32(999).u64(0) }), "tensor w has an unknown GGML type (type id 999)"},
	{"row not whole blocks", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(33).u32(8).u64(0) }), "not a multiple of the q8_0 block size"},
	{"misaligned offset", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(2).u32(0).u64(4) }), "not a multiple of the alignment"},
	{"data out of range", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(8).u32(0).u64(0) }), "truncated: tensor \"w\""},
	{"offset far out", oneTensor(func(w *fileBuilder) { w.str("w").u32(1).u64(4).u32(0).u64(1 << 63) }), "truncated: tensor \"w\""},
	{"no data section", header(1, 0).str("w").u32(1).u64(4).u32(0).u64(0).b, "truncated"},
	{"tensor count beyond file", header(1, 0).str("w").u32(2).u64(4).b, "tensor count 1 is more than the file could hold"},
	{"tensor info cut", header(1, 0).str("wwwwwwww").u32(4).u64(4).u64(4).b, "truncated: dimension of tensor wwwwwwww"},
	{"duplicate tensor", func() []byte {
		w := header(2, 0)
		w.str("w").u32(1).u64(4).u32(0).u64(0)
		w.str("w").u32(1).u64(4).u32(0).u64(32)
		return w.pad(32).raw(strings.Repeat("\x00", 64)).b
	}(), "duplicate tensor name"},
}

func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range corruptCases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".gguf")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("opened without error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q, want it to contain %q and the path", err, c.want)
			}
			var fe *Error
			var ue *UnsupportedTypeError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Errorf("error is a %T, want *Error or *UnsupportedTypeError", err)
			}
			if _, err := Parse("mem", c.data); err == nil {
				t.Error("Parse accepted what Open rejected")
			}
		})
	}
}

// TestTruncatedEverywhere cuts a valid file with every kind of field at
// every byte: each prefix that loses tensor data or header must fail cleanly.
func TestTruncatedEverywhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.gguf")
	if err := Write(path, allMetadata(), tensorsOfEveryType()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	f, err := Parse("full", data)
	if err != nil {
		t.Fatal(err)
	}
	need := 0 // bytes a valid prefix must keep: the end of the last tensor
	for _, ti := range f.Tensors {
		need = max(need, int(f.DataOffset)+int(ti.Offset)+len(ti.Data))
	}
	for n := range len(data) {
		_, err := Parse("cut", data[:n])
		if n < need && err == nil {
			t.Fatalf("prefix of %d bytes (of %d) parsed without error", n, len(data))
		}
		if n >= need && err != nil {
			t.Fatalf("prefix of %d bytes keeps all tensor data but fails: %v", n, err)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to Open. It must never panic, and any file
// it accepts must have tensors whose data decodes.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.gguf")
	if err := Write(seed, allMetadata(), tensorsOfEveryType()); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(seed)
	f.Add(b)
	if err := Write(seed, []KV{{AlignmentKey, uint32(8)}}, tensorsOfEveryType()[:2]); err != nil {
		f.Fatal(err)
	}
	b, _ = os.ReadFile(seed)
	f.Add(b)
	if b, err := os.ReadFile(filepath.Join("..", "testdata", "gguf", "tiny-llama-q4_0.gguf")); err == nil {
		f.Add(b[:16384]) // the header and the first tensors; the rest is cut off
	}
	for _, c := range corruptCases {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.gguf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(path)
		_, perr := Parse("mem", data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Open error %v but Parse error %v", err, perr)
		}
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		defer file.Close()
		for _, kv := range file.KV {
			file.String(kv.Key)
			file.Uint(kv.Key)
			file.Int(kv.Key)
			file.Float(kv.Key)
			file.Strings(kv.Key)
			file.Ints(kv.Key)
			file.Float32s(kv.Key)
		}
		for i := range file.Tensors {
			ti := &file.Tensors[i]
			if ti.Elements() > 1<<16 {
				continue
			}
			if _, err := ti.Dequantize(); err != nil {
				t.Fatalf("accepted tensor %s does not decode: %v", ti.Name, err)
			}
		}
	})
}
