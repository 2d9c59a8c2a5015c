package quant_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/masque-ai/masque/gguf"
	"github.com/masque-ai/masque/quant"
)

type pair struct{ x []float32; q []byte; t quant.DType }

func load(src, q *gguf.File) (ps []pair) {
	for i := range q.Tensors {
		qt := &q.Tensors[i]
		if !qt.Type.Quantized() { continue }
		st, _ := src.Tensor(qt.Name)
		x, _ := st.Dequantize()
		ps = append(ps, pair{x, qt.Data, qt.Type})
	}
	return
}

func count(ps []pair) (bad int) {
	for _, p := range ps {
		mine := make([]byte, len(p.q))
		quant.QuantizeRow(p.t, p.x, mine)
		bb := p.t.BlockBytes()
		for b := 0; b < len(mine)/bb; b++ {
			if !bytes.Equal(mine[b*bb:(b+1)*bb], p.q[b*bb:(b+1)*bb]) { bad++ }
		}
	}
	return
}

func TestExp(t *testing.T) {
	if os.Getenv("EXP") == "" { t.Skip() }
	src, _ := gguf.Open("/tmp/xc/m-f32.gguf")
	q4, _ := gguf.Open("/tmp/xc/m-q4_k_m.gguf")
	ps := load(src, q4)
	sites := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14}
	m := uint32(1<<15 | 1<<16)
	eval := func(m uint32) int { *quant.FMASites = m; return count(ps) }
	cur := eval(m)
	t.Logf("start %d", cur)
	for {
		bestS, bestV := -1, cur
		for _, s := range sites {
			nm := m ^ (1 << s)
			if nm&(1<<7) != 0 && nm&(1<<14) != 0 { continue }
			if v := eval(nm); v < bestV { bestS, bestV = s, v }
		}
		if bestS < 0 { break }
		m ^= 1 << bestS
		cur = bestV
		t.Logf("flip %d -> %d (mask %b)", bestS, cur, m)
	}
	for _, s := range sites { t.Logf("final: flip %d gives %d", s, eval(m^(1<<s))) }
}
