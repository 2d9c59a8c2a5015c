package model

// Exported helpers for the training engine (package train), which runs its
// own forward and backward passes and must use exactly the tables Forward
// uses.

// RopeCosSin fills cos and sin (each HeadDim/2 long) with the rotary
// embedding tables of position pos: cos(pos·inv_freq[i]) and
// sin(pos·inv_freq[i]), with inv_freq computed as Forward computes it
// (float32, Hugging Face's default, linear or llama3 rule). The rotation is
// the rotate-half one: dimension i of a head pairs with i+HeadDim/2.
func (m *Model) RopeCosSin(pos int, cos, sin []float32) {
	if m.rope == nil {
		m.rope = newRopeTable(&m.Config)
	}
	m.rope.cosSin(pos, cos, sin)
}

// RopeInvFreq returns a copy of the rotary inverse frequencies
// ([HeadDim/2], as float64 values of the float32 numbers Forward uses).
func (m *Model) RopeInvFreq() []float64 {
	if m.rope == nil {
		m.rope = newRopeTable(&m.Config)
	}
	return append([]float64(nil), m.rope.invFreq...)
}
