package model

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/quant"
)

// CacheType is how a KV cache stores keys (K) and values (V), as llama.cpp's
// --cache-type-k and --cache-type-v: F32 (the zero value, exact), F16, BF16,
// or one of the 32-element block types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and
// IQ4_NL in GGML's layouts. Each position of each KV head is stored as one
// row of its type, encoded as package quant encodes it (byte for byte as
// llama.cpp does); a head dimension that is not a multiple of a block type's
// 32 elements is padded with zeros to the next multiple (which leaves every
// dot product unchanged and costs memory: see PositionBytes).
//
// Attention multiplies the stored rows directly: the query·key products run
// as a matrix product by a matrix of the key type (for Q8_0 and a few query
// rows, integer dot products on the key blocks with the queries quantised to
// 8 bits, as llama.cpp does; see package kernels), and the values are decoded
// a block of positions at a time inside the product by the attention weights.
type CacheType struct {
	K, V quant.DType
}

// CacheTypeNames lists the names ParseCacheDType accepts.
var CacheTypeNames = []string{"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"}

// ParseCacheDType parses a KV cache element type by its llama.cpp name
// (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl; case-insensitive).
func ParseCacheDType(s string) (quant.DType, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, n := range CacheTypeNames {
		if n == name {
			t, err := quant.ParseDType(n)
			if err == nil {
				return t, nil
			}
		}
	}
	return 0, fmt.Errorf("unknown KV cache type %q (want one of %s)", s, strings.Join(CacheTypeNames, ", "))
}

// ParseCacheType parses the K and V types (see ParseCacheDType); an empty
// string means f32.
func ParseCacheType(k, v string) (CacheType, error) {
	var ct CacheType
	var err error
	if strings.TrimSpace(k) != "" {
		if ct.K, err = ParseCacheDType(k); err != nil {
			return CacheType{}, fmt.Errorf("cache type of keys: %v", err)
		}
	}
	if strings.TrimSpace(v) != "" {
		if ct.V, err = ParseCacheDType(v); err != nil {
			return CacheType{}, fmt.Errorf("cache type of values: %v", err)
		}
	}
	return ct, nil
}

func cacheDTypeOK(t quant.DType) bool {
	switch t {
	case quant.F32, quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_1, quant.Q5_0, quant.Q5_1, quant.IQ4_NL:
		return true
	}
	return false
}

// Validate reports an error for a type a cache cannot store.
func (ct CacheType) Validate() error {
	if !cacheDTypeOK(ct.K) {
		return fmt.Errorf("KV cache: keys cannot be stored as %s (want one of %s)", ct.K, strings.Join(CacheTypeNames, ", "))
	}
	if !cacheDTypeOK(ct.V) {
		return fmt.Errorf("KV cache: values cannot be stored as %s (want one of %s)", ct.V, strings.Join(CacheTypeNames, ", "))
	}
	return nil
}

// String is "k=f16,v=q8_0", or one name when both are the same.
func (ct CacheType) String() string {
	if ct.K == ct.V {
		return ct.K.String()
	}
	return "k=" + ct.K.String() + ",v=" + ct.V.String()
}

// storedDim is the number of elements one head's row of type t holds: the
// head dimension rounded up to t's block.
func storedDim(t quant.DType, headDim int) int {
	b := t.BlockElems()
	return (headDim + b - 1) / b * b
}

// rowBytes is the size of one head's row of type t.
func rowBytes(t quant.DType, headDim int) int {
	n, _ := t.RowBytes(storedDim(t, headDim))
	return n
}

// PositionBytes is the memory one position takes in a cache of this type
// for a model of shape cfg: Layers × KVHeads × (one key row + one value
// row). Cache.Bytes of a cache holding exactly n positions is n times this.
func (ct CacheType) PositionBytes(cfg *Config) int64 {
	return int64(cfg.Layers) * int64(cfg.KVHeads) * int64(rowBytes(ct.K, cfg.HeadDim)+rowBytes(ct.V, cfg.HeadDim))
}

// CacheType is the type of the caches NewCache makes (F32 unless
// SetCacheType changed it).
func (m *Model) CacheType() CacheType { return m.cacheType }

// SetCacheType sets the type of the caches NewCache makes from now on (for
// m and the views With makes of it afterwards). Caches already made keep
// theirs.
func (m *Model) SetCacheType(ct CacheType) error {
	if err := ct.Validate(); err != nil {
		return err
	}
	m.cacheType = ct
	return nil
}

// Cache is the key/value cache of one sequence. It grows as tokens are added,
// up to the maximum length it was made with.
type Cache struct {
	kvDim, headDim, max int
	ct                  CacheType
	dk, dv              int // elements per stored key and value row (headDim padded to the type's block)
	rk, rv              int // bytes per stored key and value row
	capPos              int // positions allocated per KV head
	// Per layer: [KV heads × capPos × row bytes], head-major, so the keys
	// (values) of one head are the rows of one matrix of the cache type.
	k, v    [][]byte
	n       int
	scratch []float32 // a padded row being encoded
}

// NewCache returns an empty cache of m's cache type (see SetCacheType) for
// up to maxSeq positions (maxSeq ≤ 0 means the model's
// max_position_embeddings, or 4096 if that is unset).
func (m *Model) NewCache(maxSeq int) *Cache {
	return m.newCache(maxSeq, m.cacheType)
}

// NewCacheOf is NewCache with the cache type given.
func (m *Model) NewCacheOf(maxSeq int, ct CacheType) (*Cache, error) {
	if err := ct.Validate(); err != nil {
		return nil, err
	}
	return m.newCache(maxSeq, ct), nil
}

func (m *Model) newCache(maxSeq int, ct CacheType) *Cache {
	if maxSeq <= 0 {
		maxSeq = m.Config.MaxSeq
		if maxSeq <= 0 {
			maxSeq = 4096
		}
	}
	D := m.Config.HeadDim
	return &Cache{kvDim: m.Config.KVDim(), headDim: D, max: maxSeq, ct: ct,
		dk: storedDim(ct.K, D), dv: storedDim(ct.V, D), rk: rowBytes(ct.K, D), rv: rowBytes(ct.V, D),
		k: make([][]byte, m.Config.Layers), v: make([][]byte, m.Config.Layers)}
}

// Type is the cache's element types.
func (c *Cache) Type() CacheType { return c.ct }

// head returns the stored keys and values of KV head h in layer l, one row
// per position (capPos rows, the first Len() filled).
func (c *Cache) head(l, h int) (k, v []byte) {
	nk, nv := c.capPos*c.rk, c.capPos*c.rv
	return c.k[l][h*nk : (h+1)*nk], c.v[l][h*nv : (h+1)*nv]
}

// headMatrices returns the keys and values of positions [lo, hi) of KV head
// h in layer l as (hi−lo)×dk and (hi−lo)×dv matrices of the cache's types.
func (c *Cache) headMatrices(l, h, lo, hi int) (k, v *kernels.Matrix) {
	kh, vh := c.head(l, h)
	return rowsMatrix(c.ct.K, hi-lo, c.dk, kh[lo*c.rk:hi*c.rk]), rowsMatrix(c.ct.V, hi-lo, c.dv, vh[lo*c.rv:hi*c.rv])
}

// rowsMatrix wraps rows stored by the cache (their length is right by
// construction) as a matrix.
func rowsMatrix(t quant.DType, rows, cols int, b []byte) *kernels.Matrix {
	if t == quant.F32 {
		return kernels.FromF32(rows, cols, f32View(b))
	}
	w, err := kernels.NewMatrix(t, rows, cols, b)
	if err != nil { // unreachable: the cache sizes its rows with RowBytes
		return &kernels.Matrix{Type: t}
	}
	return w
}

// put stores the keys and values of position pos in layer l from rows
// holding every KV head side by side (kvDim values each).
func (c *Cache) put(l, pos int, k, v []float32) {
	D := c.headDim
	for h := 0; h < c.kvDim/D; h++ {
		kh, vh := c.head(l, h)
		c.encode(c.ct.K, c.dk, kh[pos*c.rk:(pos+1)*c.rk], k[h*D:(h+1)*D])
		c.encode(c.ct.V, c.dv, vh[pos*c.rv:(pos+1)*c.rv], v[h*D:(h+1)*D])
	}
}

// encode writes src (headDim values) as one row of type t holding n
// elements (src padded with zeros).
func (c *Cache) encode(t quant.DType, n int, dst []byte, src []float32) {
	if t == quant.F32 {
		copy(f32View(dst), src)
		return
	}
	if n != len(src) {
		if cap(c.scratch) < n {
			c.scratch = make([]float32, n)
		}
		s := c.scratch[:n]
		copy(s, src)
		clear(s[len(src):])
		src = s
	}
	_ = quant.QuantizeRow(t, src, dst) // the cache's types all encode, and dst has the row's size
}

// Len is the number of positions stored.
func (c *Cache) Len() int { return c.n }

// Max is the number of positions the cache can hold.
func (c *Cache) Max() int { return c.max }

// Reset empties the cache, keeping its memory.
func (c *Cache) Reset() { c.n = 0 }

// Truncate drops every position from n on.
func (c *Cache) Truncate(n int) {
	if n < c.n && n >= 0 {
		c.n = n
	}
}

// CopyPrefix replaces c's contents with the first n positions of src, so
// that c continues src's sequence from position n: keys and values depend
// only on the tokens before them, so a shared prompt prefix computed once can
// seed other sequences. Both caches must belong to models of the same shape
// (layers and KV width) and be of the same type; n may be at most src.Len()
// and c.Max(). On error, c is unchanged. src is only read; when c is src, c
// is truncated to n.
func (c *Cache) CopyPrefix(src *Cache, n int) error {
	switch {
	case c == nil || src == nil:
		return fmt.Errorf("copy prefix: nil cache")
	case c.kvDim != src.kvDim || c.headDim != src.headDim || len(c.k) != len(src.k):
		return fmt.Errorf("copy prefix: caches of different models (%d layers × %d KV width, source %d × %d)", len(c.k), c.kvDim, len(src.k), src.kvDim)
	case c.ct != src.ct:
		return fmt.Errorf("copy prefix: a %s cache cannot take the positions of a %s one", c.ct, src.ct)
	case n < 0 || n > src.n:
		return fmt.Errorf("copy prefix: %d positions, the source holds %d", n, src.n)
	case n > c.max:
		return fmt.Errorf("copy prefix: %d positions exceed the cache's %d", n, c.max)
	}
	if c == src {
		c.n = n
		return nil
	}
	c.n = 0 // nothing of the old contents needs to survive a reallocation
	c.grow(n)
	for l := range c.k {
		for h := 0; h < c.kvDim/c.headDim; h++ {
			dk, dv := c.head(l, h)
			sk, sv := src.head(l, h)
			copy(dk[:n*c.rk], sk[:n*c.rk])
			copy(dv[:n*c.rv], sv[:n*c.rv])
		}
	}
	c.n = n
	return nil
}

// Bytes is the memory the cache's keys and values hold: the positions
// allocated (at least Len(); it grows by doubling) times the type's
// PositionBytes.
func (c *Cache) Bytes() int64 {
	var b int64
	for i := range c.k {
		b += int64(len(c.k[i]) + len(c.v[i]))
	}
	return b
}

// grow makes room for n positions in every layer, keeping the first Len().
func (c *Cache) grow(n int) {
	if n <= c.capPos {
		return
	}
	nc := min(max(n, 2*c.capPos), c.max)
	heads := c.kvDim / c.headDim
	for l := range c.k {
		k := allocBytes(heads * nc * c.rk)
		v := allocBytes(heads * nc * c.rv)
		if c.n > 0 {
			for h := 0; h < heads; h++ {
				ok, ov := c.head(l, h)
				copy(k[h*nc*c.rk:], ok[:c.n*c.rk])
				copy(v[h*nc*c.rv:], ov[:c.n*c.rv])
			}
		}
		c.k[l], c.v[l] = k, v
	}
	c.capPos = nc
}

// allocBytes allocates n bytes aligned for float32 (F32 rows are read as
// float32).
func allocBytes(n int) []byte {
	if n == 0 {
		return nil
	}
	f := make([]float32, (n+3)/4)
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), n)
}

// f32View reads b (from allocBytes, a multiple of 4 long) as float32s.
func f32View(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}
