package bpetrain

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkRun trains a tokenizer of 8192 ids, by default on the test corpus; set
// MASQUE_BPETRAIN_DATA (comma-separated --data paths) to time a real corpus, e.g.
//
//	MASQUE_BPETRAIN_DATA=/work/corpus/voices GOMAXPROCS=1 go test ./tokenizer/bpetrain -run - -bench Run -benchtime 3x
func BenchmarkRun(b *testing.B) {
	data := []string{filepath.Join("testdata", "kjv-genesis-1-3.txt"), filepath.Join("testdata", "corpus")}
	if d := os.Getenv("MASQUE_BPETRAIN_DATA"); d != "" {
		data = strings.Split(d, ",")
	}
	out := b.TempDir()
	var res *Result
	for b.Loop() {
		var err error
		if res, err = Run(context.Background(), Config{Data: data, Out: out}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(res.Bytes)
	b.ReportMetric(float64(len(res.Model.Merges)), "merges")
	b.ReportMetric(res.ReadTime.Seconds(), "read-s")
	b.ReportMetric(res.TrainTime.Seconds(), "merge-s")
}
