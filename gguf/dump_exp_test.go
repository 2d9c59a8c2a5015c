package gguf

import (
	"os"
	"testing"
	"encoding/binary"
	"math"
)

func TestDumpExp(t *testing.T) {
	q := os.Getenv("DUMPQ")
	if q == "" { t.Skip() }
	src, _ := Open("/tmp/xc/m-f32.gguf")
	qf, err := Open(q)
	if err != nil { t.Fatal(err) }
	name := os.Getenv("DUMPT")
	st, _ := src.Tensor(name)
	qt, _ := qf.Tensor(name)
	x, _ := st.Dequantize()
	b := make([]byte, 4*len(x))
	for i, v := range x { binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v)) }
	os.WriteFile("/tmp/xc/x.bin", b, 0o644)
	os.WriteFile("/tmp/xc/q.bin", qt.Data, 0o644)
}
