package bench

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/masque-ai/masque/model"
)

// Decoding one token reads every weight once, and on a CPU that read, not
// the arithmetic, is what bounds it: tokens/s can be at most the memory
// bandwidth divided by the bytes of weights read per token. Bandwidth
// measures the first (a STREAM-style read), WeightBytesPerToken the second.

// BandwidthOptions configure MeasureBandwidth.
type BandwidthOptions struct {
	Bytes   int64 // buffer size (0: DefaultBandwidthBytes)
	Threads int   // goroutines reading at once (0: 1)
	Reps    int   // timed passes over the buffer (0: 10)
}

// Bandwidth is what MeasureBandwidth measured: the rate at which Threads
// goroutines, each summing its own contiguous share of a buffer much larger
// than the last-level cache, read it from memory.
type Bandwidth struct {
	BufferBytes int64     `json:"buffer_bytes"`
	LLCBytes    int64     `json:"llc_bytes"` // last-level cache as the OS reports it (0: unknown)
	Threads     int       `json:"threads"`
	Reps        int       `json:"reps"`
	BestGBs     float64   `json:"best_gb_s"` // 1 GB = 1e9 bytes
	MedianGBs   float64   `json:"median_gb_s"`
	RunsGBs     []float64 `json:"gb_s_runs"`
}

// DefaultBandwidthBytes is the buffer MeasureBandwidth reads by default:
// 8 times the last-level cache and at least 256 MiB (at most 2 GiB), so
// that caches hold a negligible share of it.
func DefaultBandwidthBytes() int64 {
	return min(max(8*llcBytes(), 256<<20), 2<<30)
}

// MeasureBandwidth measures the memory read bandwidth: o.Reps passes in
// which o.Threads goroutines sum their shares of one buffer, after an
// untimed pass that faults the pages in. Best is the usual STREAM figure.
func MeasureBandwidth(o BandwidthOptions) (*Bandwidth, error) {
	if o.Bytes == 0 {
		o.Bytes = DefaultBandwidthBytes()
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Reps <= 0 {
		o.Reps = 10
	}
	words := o.Bytes / 8
	words -= words % int64(8*o.Threads) // whole unrolled iterations per thread
	if words <= 0 {
		return nil, fmt.Errorf("bench: bandwidth buffer of %d bytes is too small for %d threads", o.Bytes, o.Threads)
	}
	buf := make([]uint64, words)
	for i := range buf { // touch every page: no zero-page mappings
		buf[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	share := int(words) / o.Threads
	pass := func() (uint64, time.Duration) {
		sums := make([]uint64, o.Threads)
		var wg sync.WaitGroup
		t0 := time.Now()
		for t := 0; t < o.Threads; t++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sums[t] = sumWords(buf[t*share : (t+1)*share])
			}()
		}
		wg.Wait()
		d := time.Since(t0)
		var s uint64
		for _, x := range sums {
			s += x
		}
		return s, d
	}
	want, _ := pass() // warm-up
	r := &Bandwidth{BufferBytes: words * 8, LLCBytes: llcBytes(), Threads: o.Threads, Reps: o.Reps}
	for i := 0; i < o.Reps; i++ {
		s, d := pass()
		if s != want { // the sum is used, so no pass can be skipped, and it checks the reads
			return nil, fmt.Errorf("bench: bandwidth pass %d summed %#x, the first %#x", i, s, want)
		}
		r.RunsGBs = append(r.RunsGBs, float64(r.BufferBytes)/d.Seconds()/1e9)
	}
	r.MedianGBs = Median(r.RunsGBs)
	for _, g := range r.RunsGBs {
		r.BestGBs = max(r.BestGBs, g)
	}
	runtime.KeepAlive(buf)
	return r, nil
}

// sumWords adds v (len a multiple of 8) with eight independent
// accumulators, so that the loop issues loads as fast as the core can and
// memory, not the adds' dependency chain, sets its speed.
func sumWords(v []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for i := 0; i+8 <= len(v); i += 8 {
		w := v[i : i+8 : i+8]
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
		s4 += w[4]
		s5 += w[5]
		s6 += w[6]
		s7 += w[7]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// WeightBytesPerToken is the bytes of weights one decode step reads: every
// matrix of every block (q, k, v, o, gate, up, down, in its stored type) and
// the LM head once, the biases and norm weights (float32), and one row of
// the token embeddings (also counted when the embeddings are the LM head,
// as that lookup is a read of its own). The KV cache, which grows with the
// context, is not a weight and is not counted.
func WeightBytesPerToken(m *model.Model) int64 {
	f32 := func(v []float32) int64 { return 4 * int64(len(v)) }
	var n int64
	for i := range m.Layers {
		l := &m.Layers[i]
		n += f32(l.AttnNorm) + f32(l.MLPNorm) + f32(l.QNorm) + f32(l.KNorm)
		for p := model.Proj(0); p < model.NumProj; p++ {
			n += int64(len(l.Weight(p).Data)) + f32(l.Bias(p))
		}
	}
	n += f32(m.Norm) + int64(len(m.LMHead.Data))
	if m.Embed.Rows > 0 {
		n += int64(len(m.Embed.Data) / m.Embed.Rows)
	}
	return n
}
