package subnet

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/masque-ai/masque/data/calib"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/mask"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/stats"
)

// SparseGPTOptions tune SparseGPTMatrix.
type SparseGPTOptions struct {
	// Sparsity ρ: every row keeps k = floor(cols·(1−ρ)) entries (ignored for N:M).
	Sparsity float64
	// N and M select N:M sparsity when M > 0.
	N, M int
	// Damp is the relative dampening λ: H += λ·mean(diag H)·I (0: 0.01).
	Damp float64
	// BlockSize is the number of columns per lazy-update block (0: 128).
	BlockSize int
	// Workers is the number of goroutines (≤ 0: GOMAXPROCS).
	Workers int
}

// SparseGPTMatrix prunes the rows×cols matrix w (row-major) with SparseGPT,
// given H = XᵀX (cols×cols, row-major, float64) over the calibration inputs
// X. It returns the updated weights (pruned entries exactly 0) and the keep
// mask; w and H are not modified.
//
// The algorithm is that of Frantar & Alistarh (2023): columns whose diagonal
// entry of H is 0 are dead (their weights are zeroed); H is dampened by
// λ·mean(diag H); U is the upper Cholesky factor of H⁻¹; columns are
// processed left to right in blocks of BlockSize: the mask of a block is
// chosen from the saliency w²/U_jj² of the current (already updated) weights,
// each pruned weight's error e = w_j/U_jj is spread over the remaining
// columns of the block (w −= e·U_j,·), and the block's errors are applied to
// all later columns at once (lazy batch update). Mask selection is per row:
// row r prunes exactly cols−k entries, spread over the blocks in proportion
// to their width (or M−N of every M for N:M), so the result has the same
// pattern as the Wanda and magnitude masks. Should the Cholesky
// factorisation fail, the dampening is increased tenfold, up to four times.
func SparseGPTMatrix(w []float32, rows, cols int, H []float64, o SparseGPTOptions) ([]float32, *mask.Bits, error) {
	if len(w) != rows*cols || len(H) != cols*cols {
		return nil, nil, fmt.Errorf("sparsegpt: %d weights and %d Hessian entries for a %d×%d matrix", len(w), len(H), rows, cols)
	}
	damp := o.Damp
	if damp == 0 {
		damp = 0.01
	}
	bs := o.BlockSize
	if bs <= 0 {
		bs = 128
	}
	if o.M > 0 {
		if cols%o.M != 0 || o.N <= 0 || o.N > o.M {
			return nil, nil, fmt.Errorf("sparsegpt: %d:%d does not fit %d columns", o.N, o.M, cols)
		}
		bs = max(o.M, bs-bs%o.M)
	}
	workers := o.Workers
	if workers <= 0 {
		workers = (&Options{}).workers()
	}
	dead := make([]bool, cols)
	var meanDiag float64
	for i := 0; i < cols; i++ {
		d := H[i*cols+i]
		if d == 0 {
			dead[i] = true
			d = 1
		}
		meanDiag += d
	}
	meanDiag /= float64(cols)
	var U []float64
	var err error
	for try := 0; try < 5; try++ {
		U, err = upperCholInverse(H, cols, dead, damp*meanDiag, workers)
		if err == nil {
			break
		}
		damp *= 10
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sparsegpt: the dampened Hessian is not positive definite: %v", err)
	}
	keepN := keepCount(cols, o.Sparsity)
	prune := cols - keepN
	out := make([]float32, rows*cols)
	bits := mask.NewBits(rows, cols)
	parallelRows(rows, workers, func(r0, r1 int) {
		wr := make([]float64, cols)
		keep := make([]bool, cols)
		sal := make([]float64, cols)
		idx := make([]int, cols)
		errs := make([]float64, bs)
		for r := r0; r < r1; r++ {
			for j, v := range w[r*cols : (r+1)*cols] {
				wr[j] = float64(v)
				if dead[j] {
					wr[j] = 0
				}
			}
			for i := range keep {
				keep[i] = true
			}
			for i1 := 0; i1 < cols; i1 += bs {
				i2 := min(i1+bs, cols)
				if o.M <= 0 {
					q := prune*i2/cols - prune*i1/cols
					if q > 0 {
						for j := i1; j < i2; j++ {
							d := U[j*cols+j]
							sal[j] = wr[j] * wr[j] / (d * d)
						}
						rk := ranker{p: sal[i1:i2]}
						kb := keep[i1:i2]
						rk.keepRanks(kb, idx, 0, (i2-i1)-q)
					}
				}
				for j := i1; j < i2; j++ {
					if o.M > 0 && (j-i1)%o.M == 0 {
						for t := j; t < j+o.M; t++ {
							d := U[t*cols+t]
							sal[t] = wr[t] * wr[t] / (d * d)
						}
						rk := ranker{p: sal[j : j+o.M]}
						rk.keepNM(keep[j:j+o.M], 0, o.N, o.M)
					}
					e := 0.0
					if !keep[j] {
						uj := U[j*cols : (j+1)*cols]
						e = wr[j] / uj[j]
						for t := j + 1; t < i2; t++ {
							wr[t] -= e * uj[t]
						}
						wr[j] = 0
					}
					errs[j-i1] = e
				}
				if i2 < cols {
					rest := wr[i2:]
					for j := i1; j < i2; j++ {
						e := errs[j-i1]
						if e == 0 {
							continue
						}
						uj := U[j*cols+i2 : (j+1)*cols]
						uj = uj[:len(rest)]
						for t, u := range uj {
							rest[t] -= e * u
						}
					}
				}
			}
			o := out[r*cols : (r+1)*cols]
			for j, v := range wr {
				if keep[j] {
					o[j] = float32(v)
				} else {
					o[j] = 0
				}
			}
			bits.SetRow(r, keep)
		}
	})
	return out, bits, nil
}

// upperCholInverse returns U (n×n, row-major, upper triangular) with
// (H' + damp·I)⁻¹ = UᵀU, where H' is H with the diagonal entries of dead
// columns set to 1. It uses H' + damp·I = V·Vᵀ with V upper triangular (the
// Cholesky factorisation with rows and columns in reverse order), so that
// U = V⁻¹. Memory: two n×n float64 buffers besides H.
func upperCholInverse(H []float64, n int, dead []bool, damp float64, workers int) ([]float64, error) {
	// L = chol(P H' P), lower, with P the order reversal.
	L := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			L[i*n+j] = H[(n-1-i)*n+(n-1-j)]
		}
		if dead != nil && dead[n-1-i] {
			L[i*n+i] = 1
		}
		L[i*n+i] += damp
	}
	if err := cholesky(L, n, workers); err != nil {
		return nil, err
	}
	X := invLower(L, n, workers)
	// U = P X P, written over L.
	U := L
	clear(U)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			U[(n-1-i)*n+(n-1-j)] = X[i*n+j]
		}
	}
	return U, nil
}

// cholesky factors the symmetric positive definite matrix whose lower
// triangle is in A (row-major) into L·Lᵀ, in place (lower triangle).
func cholesky(A []float64, n, workers int) error {
	for j := 0; j < n; j++ {
		rj := A[j*n : j*n+j]
		s := A[j*n+j] - dot64(rj, rj)
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("pivot %d is %g", j, s)
		}
		d := math.Sqrt(s)
		A[j*n+j] = d
		rows := n - j - 1
		do := func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				ri := A[i*n : i*n+j]
				A[i*n+j] = (A[i*n+j] - dot64(ri, rj)) / d
			}
		}
		if workers > 1 && rows*j > 1<<15 {
			parallelRows(rows, workers, func(a, b int) { do(j+1+a, j+1+b) })
		} else {
			do(j+1, n)
		}
	}
	for i := 0; i < n; i++ {
		clear(A[i*n+i+1 : (i+1)*n])
	}
	return nil
}

// invLower returns the inverse of the lower triangular L (row-major).
func invLower(L []float64, n, workers int) []float64 {
	X := make([]float64, n*n)
	workers = max(1, min(workers, n))
	// Column j costs O((n−j)²): columns are dealt out round-robin.
	parallelRows(workers, workers, func(w0, w1 int) {
		x := make([]float64, n)
		for j := w0; j < n; j += workers { // column j of X solves L x = e_j
			clear(x)
			x[j] = 1 / L[j*n+j]
			for i := j + 1; i < n; i++ {
				x[i] = -dot64(L[i*n+j:i*n+i], x[j:i]) / L[i*n+i]
			}
			for i := j; i < n; i++ {
				X[i*n+j] = x[i]
			}
		}
	})
	return X
}

func dot64(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sparseGPTKey prunes one projection given its Gram matrix and stores the
// result in res.
func sparseGPTKey(m *model.Model, k mask.Key, gram []float64, o *Options, res *Result) error {
	w := m.Layers[k.Layer].Weight(k.Proj)
	if len(gram) != w.Cols*w.Cols {
		return fmt.Errorf("subnet: Gram matrix of layer %d %s has %d entries, want %d²", k.Layer, k.Proj, len(gram), w.Cols)
	}
	upd, bits, err := SparseGPTMatrix(w.Float32s(), w.Rows, w.Cols, gram, SparseGPTOptions{
		Sparsity: o.SparsityOf(k.Layer), N: o.N, M: o.M, Damp: o.Damp, BlockSize: o.BlockSize, Workers: o.Workers})
	if err != nil {
		return fmt.Errorf("subnet: layer %d %s: %w", k.Layer, k.Proj, err)
	}
	if err := res.Mask.Set(k, bits); err != nil {
		return err
	}
	res.Weights[k] = upd
	return nil
}

// SparseGPTSequential runs SparseGPT layer by layer as in the original
// work: the Gram matrices of block l are collected from calibration passes
// through blocks 0..l whose weights are already pruned and updated, so each
// block compensates for the errors of the blocks before it. Only one block's
// Gram matrices are in memory at a time. samples are token sequences
// (already truncated). progress, if set, is called after every sample of
// every pass (total = layers × samples).
func SparseGPTSequential(ctx context.Context, m *model.Model, samples [][]int, rec calib.Record, o Options, progress func(done, total int)) (*Result, error) {
	o.Method = SparseGPT
	if err := o.validate(&m.Config); err != nil {
		return nil, err
	}
	if o.Structured {
		return nil, errors.New("subnet: SparseGPT does not support structured FFN-channel pruning")
	}
	if len(samples) == 0 {
		return nil, errors.New("subnet: SparseGPT needs calibration samples")
	}
	mk := newMask(m, &o, SparseGPT)
	res := &Result{Mask: mk, Weights: mask.Weights{}}
	work := make([]model.Layer, len(m.Layers))
	copy(work, m.Layers)
	L := m.Config.Layers
	var tokens int64
	for l := 0; l < L; l++ {
		var need [stats.NumInputs]bool
		any := false
		for p := model.Proj(0); p < model.NumProj; p++ {
			if o.Targets.Has(p) {
				need[stats.InputOf(p)] = true
				any = true
			}
		}
		if !any {
			break
		}
		cfg := m.Config
		cfg.Layers = l + 1
		view, err := model.New(cfg, m.Embed, work[:l+1], m.Norm, m.LMHead)
		if err != nil {
			return nil, err
		}
		view.K = m.K
		layer := l
		col := stats.NewCollector(view, stats.Options{Inputs: need, Workers: o.Workers,
			Layer: func(i int) bool { return i == layer },
			Gram:  func(i int, _ stats.Input) bool { return i == layer }})
		for i, s := range samples {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := col.AddSample(s); err != nil {
				return nil, fmt.Errorf("subnet: calibration sample %d: %w", i, err)
			}
			if progress != nil {
				progress(l*len(samples)+i+1, L*len(samples))
			}
		}
		st := col.Stats(stats.Manifest{Calibration: rec, ModelFingerprint: mk.Fingerprint})
		tokens = st.Manifest.Tokens
		for p := model.Proj(0); p < model.NumProj; p++ {
			if !o.Targets.Has(p) {
				continue
			}
			k := mask.Key{Layer: l, Proj: p}
			if err := sparseGPTKey(m, k, st.Channel(l, p).Gram, &o, res); err != nil {
				return nil, err
			}
			work[l].SetWeight(p, kernels.FromF32(mk.Shapes[p][0], mk.Shapes[p][1], res.Weights[k]))
		}
	}
	mk.Info.Calibration = fmt.Sprintf("%s (%d samples, %d tokens)", rec.Name, len(samples), tokens)
	if mk.Info.Extra == nil {
		mk.Info.Extra = map[string]string{}
	}
	mk.Info.Extra["sparsegpt"] = "sequential"
	return res, nil
}
