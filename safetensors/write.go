package safetensors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/masque-ai/masque/internal/atomicfile"
)

// WriteTensor is a tensor to be written by Write.
type WriteTensor struct {
	Name  string // tensor name; must be unique and not "__metadata__"
	DType string // safetensors element type: "F32", "F16", "BF16", "I64", …
	Shape []int  // dimensions, outermost first; empty for a scalar
	Data  []byte // little-endian elements, exactly product(Shape) × element size bytes
}

// Write writes tensors, in the given order, and metadata (may be nil) as a
// safetensors file at path. The header is padded with spaces so the data
// section starts at a multiple of 8 bytes. The file is replaced atomically:
// on any error an existing file at path is left untouched. The tensors are
// checked (known dtype, non-negative shape, data length, unique names)
// before anything is written.
//
// Replacing a file that is currently open is safe on Unix-like systems: the
// open File keeps seeing the old contents until it is closed.
func Write(path string, tensors []WriteTensor, metadata map[string]string) error {
	header, err := buildHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	err = atomicfile.WriteFile(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<16)
		var lenBuf [8]byte
		for i := range 8 {
			lenBuf[i] = byte(uint64(len(header)) >> (8 * i))
		}
		bw.Write(lenBuf[:])
		bw.Write(header)
		for _, t := range tensors {
			if _, err := bw.Write(t.Data); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	return nil
}

// buildHeader validates the tensors and returns the padded JSON header.
func buildHeader(tensors []WriteTensor, metadata map[string]string) ([]byte, error) {
	var h bytes.Buffer
	h.WriteByte('{')
	sep := func() {
		if h.Len() > 1 {
			h.WriteByte(',')
		}
	}
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata) // keys come out sorted
		if err != nil {
			return nil, err
		}
		h.WriteString(`"` + metadataKey + `":`)
		h.Write(m)
	}
	seen := make(map[string]bool, len(tensors))
	offset := 0
	for _, t := range tensors {
		if t.Name == metadataKey {
			return nil, fmt.Errorf("tensor name %q is reserved", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		size := DTypeSize(t.DType)
		if size == 0 {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		elems := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			if d != 0 && elems > math.MaxInt/d {
				return nil, fmt.Errorf("tensor %q: shape %v overflows", t.Name, t.Shape)
			}
			elems *= d
		}
		if elems > math.MaxInt/size || len(t.Data) != elems*size {
			return nil, fmt.Errorf("tensor %q: has %d bytes, but %s × %v needs %d", t.Name, len(t.Data), t.DType, t.Shape, elems*size)
		}
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, err
		}
		sep()
		h.Write(name)
		h.WriteString(`:{"dtype":"` + t.DType + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[` + strconv.Itoa(offset) + "," + strconv.Itoa(offset+len(t.Data)) + "]}")
		offset += len(t.Data)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes(), nil
}
