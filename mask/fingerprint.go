package mask

import (
	"fmt"

	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
)

// FingerprintMasked is m.Fingerprint() of Masked(m, mk, nil), the fingerprint of
// the masked copy that `masque mask apply` writes, computed one masked
// matrix at a time: for a mask applied per sequence over m (package
// persona), whose reports and caches name the masked weights.
func FingerprintMasked(m *model.Model, mk *Mask) (string, error) {
	if err := mk.Check(m); err != nil {
		return "", err
	}
	return m.FingerprintWith(func(l int, p model.Proj) (*kernels.Matrix, error) {
		w := m.Layers[l].Weight(p)
		b := mk.Get(Key{Layer: l, Proj: p})
		if b == nil {
			return w, nil
		}
		nw, err := maskedMatrix(w, b, mk.Gamma, nil)
		if err != nil {
			return nil, fmt.Errorf("mask: layer %d %s: %v", l, p.HFName(), err)
		}
		return nw, nil
	})
}
