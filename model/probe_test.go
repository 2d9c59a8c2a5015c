package model

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestProbeCompare(t *testing.T) {
	a, b := fpLoad(t, "stories"), fpLoad(t, "stories")
	p, err := a.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if want := a.Config.Layers * int(NumProj) * ProbeRows * ProbeCols; len(p.Values) != want || p.Type != "f32" {
		t.Fatalf("probe of %d values of type %s, want %d of f32", len(p.Values), p.Type, want)
	}
	pm, err := p.Compare(b)
	if err != nil || !pm.Fits || !pm.Within || pm.Rel != 0 || pm.Quantised != nil || pm.Tol != 0.01 {
		t.Fatalf("the same weights: %+v, %v", pm, err)
	}
	// Weights 0.5% off are within the tolerance of f32 storage, weights
	// 20% off are not.
	for _, c := range []struct {
		scale  float32
		within bool
	}{{1.005, true}, {1.2, false}} {
		for l := range b.Layers {
			for pr := Proj(0); pr < NumProj; pr++ {
				w := a.Layers[l].Weight(pr).F32()
				v := b.Layers[l].Weight(pr).F32()
				for i := range v {
					v[i] = c.scale * w[i]
				}
			}
		}
		pm, err := p.Compare(b)
		if err != nil || !pm.Fits || pm.Within != c.within || math.Abs(pm.Rel-float64(c.scale-1)) > 1e-4 {
			t.Errorf("weights ×%g: %+v, %v", c.scale, pm, err)
		}
	}
	// A probe of another model's size does not fit.
	short := &Probe{Type: p.Type, Values: p.Values[:len(p.Values)-1]}
	if pm, err := short.Compare(a); err != nil || pm.Fits || pm.Within {
		t.Fatalf("a probe of another size: %+v, %v", pm, err)
	}
}

// TestProbeJudge: the recorded base in another encoding is accepted, a
// model of another layout or other weights is not, with the reason.
func TestProbeJudge(t *testing.T) {
	a, b := fpLoad(t, "stories"), fpLoad(t, "stories")
	p, err := a.Probe()
	if err != nil {
		t.Fatal(err)
	}
	arch := a.ArchFingerprint()
	if why, pm, err := p.Judge(b, arch, "the sample"); why != "" || err != nil || !pm.Within {
		t.Fatalf("the same weights: %q %+v %v", why, pm, err)
	}
	if why, _, _ := p.Judge(b, "another-arch", "the sample"); !strings.Contains(why, "architecture") {
		t.Errorf("another layout: %q", why)
	}
	for l := range b.Layers {
		v := b.Layers[l].Weight(ProjQ).F32()
		for i := range v {
			v[i] *= 3
		}
	}
	if why, _, _ := p.Judge(b, arch, "the sample"); !strings.Contains(why, "differ from the sample by") {
		t.Errorf("other weights: %q", why)
	}
	short := &Probe{Type: p.Type, Values: p.Values[:5]}
	if why, _, _ := short.Judge(a, arch, "the sample"); !strings.Contains(why, "does not fit") {
		t.Errorf("a probe of another size: %q", why)
	}
}

func TestProbeJSON(t *testing.T) {
	p, err := fpLoad(t, "stories").Probe()
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(j), `{"type":"f32","rows":4,"cols":16,"values":"`) {
		t.Fatalf("encoding %.80s…", j)
	}
	var q Probe
	if err := json.Unmarshal(j, &q); err != nil || q.Type != p.Type || !slices.Equal(q.Values, p.Values) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{
		`{"type":"f32","rows":8,"cols":16,"values":""}`,
		`{"type":"f99","rows":4,"cols":16,"values":""}`,
		`{"type":"f32","rows":4,"cols":16,"values":"AAA"}`,
		`{"type":"f32","rows":4,"cols":16,"values":"AADAfw=="}`, // NaN
		`[1]`,
	} {
		if err := json.Unmarshal([]byte(bad), &q); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
