package synth

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// RowID is the stable id of a row: the first 64 bits, in hex, of the
// SHA-256 of its kind and inputs (each part length-prefixed, so no two
// different input lists share an id). The same inputs always give the same
// id, on any machine and in any run.
func RowID(kind string, parts ...string) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(kind)
	for _, p := range parts {
		write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// hash64 is a 64-bit hash of s (the first 8 bytes of its SHA-256).
func hash64(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.LittleEndian.Uint64(sum[:8])
}

// Shard selects a deterministic part of the work: row r belongs to shard
// Index of Count when hash(r.id) mod Count == Index. The zero value (or
// 0/1) is the whole job.
type Shard struct {
	Index, Count int // shard Index of Count (0 ≤ Index < Count)
}

// ParseShard parses "i/n" (0 ≤ i < n); "" is the whole job.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{0, 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("bad shard %q: want i/n with 0 ≤ i < n, e.g. 0/4", s)
	}
	return Shard{i, n}, nil
}

// norm returns s with a zero Count read as 1.
func (s Shard) norm() Shard {
	if s.Count <= 0 {
		return Shard{0, 1}
	}
	return s
}

// String formats the shard as "i/n".
func (s Shard) String() string {
	s = s.norm()
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Whole reports whether the shard is the whole job.
func (s Shard) Whole() bool { return s.norm().Count == 1 }

// Has reports whether row id belongs to the shard.
func (s Shard) Has(id string) bool {
	s = s.norm()
	return ShardOf(id, s.Count) == s.Index
}

// ShardOf is the shard, of n, that row id belongs to.
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(hash64("shard\x00"+id) % uint64(n))
}
