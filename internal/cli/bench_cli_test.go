package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchBandwidth: masque bench reports the memory bandwidth with the
// decode threads, the bound it sets and decode as a fraction of it, in JSON
// and in text (figures are not asserted: the machine may be busy).
func TestBenchBandwidth(t *testing.T) {
	code, out, errs := run(t, "", "bench", "--prompt-tokens", "8", "--gen-tokens", "4", "--reps", "1", "--threads", "2", "--bandwidth-reps", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Threads             int       `json:"threads"`
		DecodeTokS          float64   `json:"decode_tok_s"`
		WeightBytesPerToken int64     `json:"weight_bytes_per_token"`
		BoundTokS           float64   `json:"bandwidth_bound_tok_s"`
		DecodeOfBound       float64   `json:"decode_of_bound"`
		DecodeOfBoundRuns   []float64 `json:"decode_of_bound_runs"`
		Bandwidth           struct {
			Threads   int       `json:"threads"`
			BestGBs   float64   `json:"best_gb_s"`
			MedianGBs float64   `json:"median_gb_s"`
			Runs      []float64 `json:"gb_s_runs"`
			Bytes     int64     `json:"buffer_bytes"`
		} `json:"bandwidth"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	// stories260K, float32: see bench.TestWeightBytesPerToken for the count.
	if r.WeightBytesPerToken != 5*4*(64*64+2*32*64+64*64+3*172*64+2*64)+4*64+4*512*64+4*64 {
		t.Errorf("weight bytes per token %d", r.WeightBytesPerToken)
	}
	if r.Bandwidth.Threads != 2 || r.Threads != 2 || len(r.Bandwidth.Runs) != 2 || r.Bandwidth.Bytes < 256<<20 || r.Bandwidth.BestGBs <= 0 {
		t.Errorf("bandwidth %+v (bench threads %d)", r.Bandwidth, r.Threads)
	}
	if r.BoundTokS <= 0 || r.DecodeOfBound <= 0 || len(r.DecodeOfBoundRuns) != 1 {
		t.Errorf("bound %g tok/s, decode at %g of it, runs %v", r.BoundTokS, r.DecodeOfBound, r.DecodeOfBoundRuns)
	}

	code, out, errs = run(t, "", "bench", "--prompt-tokens", "8", "--gen-tokens", "4", "--reps", "1", "--threads", "1", "--bandwidth-reps", "1")
	if code != 0 {
		t.Fatalf("text: exit %d: %s", code, errs)
	}
	for _, want := range []string{"memory ", "GB/s best", "1 threads", "bound ", "MiB of weights per token", "of the bound"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ = run(t, "", "bench", "--prompt-tokens", "8", "--gen-tokens", "4", "--reps", "1", "--no-bandwidth"); code != 0 || strings.Contains(out, "bound") {
		t.Errorf("--no-bandwidth: exit %d, output:\n%s", code, out)
	}
	if code, _, errs = run(t, "", "bench", "--bandwidth-reps", "0"); code == 0 || !strings.Contains(errs, "--bandwidth-reps") {
		t.Errorf("--bandwidth-reps 0: exit %d, %s", code, errs)
	}
}
