package sculpt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/train"
)

func loadHF(t testing.TB, name string) *model.Model {
	t.Helper()
	m, err := model.LoadHF("../testdata/hf-tiny/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// randomSeqs draws sequences of token ids with targets on their second half.
func randomSeqs(vocab, n, length int, seed uint64) []train.Sequence {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []train.Sequence
	for i := 0; i < n; i++ {
		s := train.Sequence{Tokens: make([]int, length), Targets: make([]int, length)}
		for j := range s.Tokens {
			s.Tokens[j] = rng.IntN(vocab)
		}
		for j := range s.Targets {
			s.Targets[j] = train.IgnoreIndex
			if j >= length/2 && j+1 < length {
				s.Targets[j] = s.Tokens[j+1]
			}
		}
		out = append(out, s)
	}
	return out
}

func newTestLearner(t *testing.T, m *model.Model, est string, k int, seed uint64) *learner {
	t.Helper()
	net, err := train.New(m, train.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{Estimator: est, Temperature: 0.5, Seed: seed}
	lr := &learner{cfg: c, net: net, m: m, k: k}
	rng := rand.New(rand.NewPCG(seed, 2))
	dff := m.Config.Intermediate
	for l := 0; l < m.Config.Layers; l++ {
		z := make([]float32, dff)
		for i := range z {
			z[i] = float32(rng.NormFloat64())
		}
		lr.z = append(lr.z, &train.Param{Name: "z", Shape: []int{dff}, Data: z, Grad: make([]float32, dff)})
		net.FFNMask[l] = make([]float32, dff)
		net.FFNMaskGrad[l] = make([]float32, dff)
	}
	lr.keep = lr.currentKeep()
	return lr
}

func meanLoss(t *testing.T, net *train.Net, seqs []train.Sequence) float64 {
	t.Helper()
	r, err := net.Loss(seqs)
	if err != nil {
		t.Fatal(err)
	}
	return r.Mean()
}

// The straight-through gradient reaching z equals the derivative of the
// masked model's loss with respect to each mask entry (central finite
// differences on a tiny model with MLP biases), for kept and pruned
// channels alike.
func TestSTEGradientIsMaskGradient(t *testing.T) {
	m := loadHF(t, "llama")
	seqs := randomSeqs(m.Config.Vocab, 2, 24, 7)
	k := m.Config.Intermediate * 3 / 4
	lr := newTestLearner(t, m, EstimatorSTE, k, 5)
	lr.forwardMasks(0)
	lr.net.ZeroGrad()
	if _, err := lr.net.ForwardBackward(seqs, 0); err != nil {
		t.Fatal(err)
	}
	lr.backwardScores()
	const eps = 1e-2
	checked := 0
	for l := range lr.z {
		mk := lr.net.FFNMask[l]
		for _, i := range []int{lr.keep[l][0], lr.keep[l][k/2], 1, 77, 150, 175} {
			orig := mk[i]
			mk[i] = orig + eps
			lp := meanLoss(t, lr.net, seqs)
			mk[i] = orig - eps
			lm := meanLoss(t, lr.net, seqs)
			mk[i] = orig
			fd := (lp - lm) / (2 * eps)
			g := float64(lr.z[l].Grad[i])
			if math.Abs(fd-g) > 1e-6+1e-2*math.Abs(fd) {
				t.Errorf("layer %d channel %d (mask %v): dL/dz %.6g, finite difference %.6g", l, i, orig, g, fd)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

// The soft top-k estimator's backward pass is the exact vector-Jacobian
// product of the soft mask as a function of z (the threshold's dependence
// on z included): checked against float64 central differences of g·m(z).
func TestSoftTopKGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, k, tau = 40, 25, 0.3
	z := make([]float64, n)
	g := make([]float64, n)
	for i := range z {
		z[i] = rng.NormFloat64()
		g[i] = rng.NormFloat64()
	}
	m, a, b := softTopK(z, k, tau)
	gz := softTopKBack(g, m, a, b, tau)
	dot := func() float64 {
		mm, _, _ := softTopK(z, k, tau)
		var s float64
		for i := range mm {
			s += g[i] * mm[i]
		}
		return s
	}
	const eps = 1e-7
	for j := range z {
		o := z[j]
		z[j] = o + eps
		p := dot()
		z[j] = o - eps
		q := dot()
		z[j] = o
		fd := (p - q) / (2 * eps)
		if math.Abs(fd-gz[j]) > 1e-6*(1+math.Abs(fd)) {
			t.Errorf("z[%d] (threshold pair %v): gradient %.9g, finite difference %.9g", j, j == a || j == b, gz[j], fd)
		}
	}
	// And the engine's soft-masked loss is consistent with it: the learner
	// feeds the Net's mask gradient through softTopKBack.
	mdl := loadHF(t, "llama")
	seqs := randomSeqs(mdl.Config.Vocab, 1, 16, 9)
	lr := newTestLearner(t, mdl, EstimatorSoftTopK, mdl.Config.Intermediate/2, 11)
	lr.forwardMasks(0)
	lr.net.ZeroGrad()
	if _, err := lr.net.ForwardBackward(seqs, 0); err != nil {
		t.Fatal(err)
	}
	lr.backwardScores()
	for l := range lr.z {
		want := softTopKBack(f64(lr.net.FFNMaskGrad[l]), f64(lr.net.FFNMask[l]), lr.pair[l][0], lr.pair[l][1], lr.cfg.Temperature)
		for i, v := range want {
			if math.Abs(float64(lr.z[l].Grad[i])-v) > 1e-9+1e-5*math.Abs(v) {
				t.Fatalf("layer %d channel %d: %g vs %g", l, i, lr.z[l].Grad[i], v)
			}
		}
	}
}
