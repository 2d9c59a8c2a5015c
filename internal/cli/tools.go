package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/bench"
	"github.com/masque-ai/masque/gguf"
	"github.com/masque-ai/masque/kernels"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/quant"
	"github.com/masque-ai/masque/randmodel"
)

func (e *env) benchCmd() *cobra.Command {
	mf := modelFlags{withCache: true}
	var o bench.Options
	var asJSON bool
	var level, cpuProfile string
	c := &cobra.Command{
		Use:   "bench --model PATH [--prompt-tokens 128 --gen-tokens 64 --threads 2] [--json]",
		Short: "Measure prompt and decode speed (tokens/s) and peak memory",
		Long: `Measure prompt processing (one batched pass over --prompt-tokens random tokens)
and decoding (--gen-tokens greedy single-token steps), as medians over --reps
repetitions after a warm-up, and the peak resident memory. The definitions
match the llama.cpp anchor's bench, so the two can be compared on the same GGUF
file (see bench/compare.sh).

Then the memory read bandwidth with the same threads (a STREAM-style sum over
a buffer 8× the last-level cache, at least 256 MiB; best and median of
--bandwidth-reps passes) and the bound it sets on decoding: best bandwidth ÷
the bytes of weights one token reads (every matrix once in its stored type,
norms and biases, one embedding row; not the KV cache). Each decode figure is
also given as a fraction of that bound. --no-bandwidth skips it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.BandwidthReps < 1 {
				return usagef("--bandwidth-reps must be at least 1, got %d", o.BandwidthReps)
			}
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			if level != "" {
				k, err := kernels.ForLevel(level)
				if err != nil {
					return usagef("--kernels: %v", err)
				}
				ck.Model.K = k
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			r, err := bench.Run(ck.Model, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, r)
			}
			e.printBench(r)
			return nil
		},
	}
	mf.register(c)
	c.Flags().IntVar(&o.PromptTokens, "prompt-tokens", 128, "tokens in the timed prompt pass")
	c.Flags().IntVar(&o.GenTokens, "gen-tokens", 64, "timed decode steps")
	c.Flags().IntVar(&o.Reps, "reps", 3, "repetitions (medians are reported)")
	c.Flags().IntVar(&o.Threads, "threads", 0, "kernel threads (default: one per core)")
	c.Flags().Uint64Var(&o.Seed, "seed", 1, "seed of the random prompt")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&o.NoBandwidth, "no-bandwidth", false, "skip the memory-bandwidth measurement and the decode bound")
	c.Flags().IntVar(&o.BandwidthReps, "bandwidth-reps", 10, "passes of the bandwidth measurement (best and median are reported)")
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	c.Flags().StringVar(&level, "kernels", "", "force a kernel level ("+strings.Join(kernels.Levels(), ", ")+")")
	return c
}

func fmtRuns(v []float64) string { return fmtRunsPrec(v, 1) }

func fmtRunsPrec(v []float64, prec int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.*f", prec, x)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (e *env) randomCmd() *cobra.Command {
	var arch, preset, out, dtype string
	var seed uint64
	var std float32
	c := &cobra.Command{
		Use:   "random --preset qwen2.5-0.5b --out DIR",
		Short: "Write a random-weight model with the shape of a real one (for benchmarks)",
		Long: `Write a Hugging Face folder holding a model with random weights N(0, std²)
and the exact shape of a real model, plus a synthetic byte-level tokenizer.
Speed does not depend on weight values, so these stand in for real models in
benchmarks. Presets: ` + strings.Join(randmodel.PresetNames(), ", ") + `.`,
		Example: `  masque random --arch qwen2 --preset qwen2.5-0.5b --out /tmp/qwen25-05b
  masque random --preset smollm2-135m --dtype bf16 --out /tmp/smollm2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, ok := randmodel.Presets[preset]
			if !ok {
				return usagef("unknown --preset %q (have %s)", preset, strings.Join(randmodel.PresetNames(), ", "))
			}
			if arch != "" {
				want, err := model.ArchFor(arch)
				if err != nil {
					return usagef("--arch: %v", err)
				}
				if want != cfg.Arch {
					return usagef("--arch %s does not match preset %s (%s)", arch, preset, cfg.Arch)
				}
			}
			dt, err := quant.ParseDType(dtype)
			if err != nil || (dt != quant.F32 && dt != quant.F16 && dt != quant.BF16) {
				return usagef("--dtype must be f32, f16 or bf16")
			}
			if out == "" {
				return usagef("--out is required")
			}
			if err := randmodel.Write(out, cfg, seed, std, dt); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %s (%s, %s)\n", out, preset, dt)
			return nil
		},
	}
	c.Flags().StringVar(&arch, "arch", "", "architecture (llama, qwen2, qwen3, mistral); checked against the preset")
	c.Flags().StringVar(&preset, "preset", "qwen2.5-0.5b", "shape to copy")
	c.Flags().StringVar(&out, "out", "", "output folder")
	c.Flags().StringVar(&dtype, "dtype", "f32", "storage type: f32, f16 or bf16")
	c.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	c.Flags().Float32Var(&std, "std", 0.02, "standard deviation of the weights")
	return c
}

func (e *env) convertCmd(quantize bool) *cobra.Command {
	var mf modelFlags
	var out, typ string
	use, short := "convert --model HF_DIR --out FILE.gguf [--type F32|F16|BF16|Q8_0|Q4_K_M|…]",
		"Convert a model (Hugging Face folder, llama2.c, GGUF) to GGUF"
	if quantize {
		use, short = "quantize --model IN --type Q4_K_M|Q5_K_M|Q6_K|Q8_0|Q4_0|… --out OUT.gguf", "Quantise a model's weights and write a GGUF file"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The file holds the weights, the tokenizer and the chat template, and loads in
llama.cpp and ollama as well as in masque. --type takes llama.cpp's recipe
names (llama-quantize's): F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL,
IQ4_XS (Q4_K and Q5_K mean Q4_K_M and Q5_K_M),
with llama.cpp's per-tensor choices: Q6_K (or Q8_0) for the output matrix
and a tied embedding, Q6_K/Q5_K bumps of attn_v and ffn_down on the layers
llama.cpp picks, and its fallbacks where rows are not a multiple of 256
(Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K/IQ4_XS -> IQ4_NL,
then F16). Where llama.cpp refuses (rows of a legacy type that are not whole
blocks) masque writes F16. The bytes are llama-quantize's (no imatrix).
A table of every matrix's type is printed. Norms and biases are f32. The
output appears only when complete (written to a temporary name first).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ft, err := gguf.ParseFileType(typ)
			if err != nil {
				return usagef("--type: %v", err)
			}
			if err := ft.Writable(); err != nil {
				return usagef("--type: %v", err)
			}
			if out == "" {
				return usagef("--out is required")
			}
			ck, err := mf.open()
			if err != nil {
				return err
			}
			defer ck.Close()
			var plan []gguf.Choice
			t0 := time.Now()
			if err := ck.SaveGGUFWith(out, model.GGUFOptions{Recipe: ft.String(), Plan: &plan}); err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			printPlan(e.stderr, plan)
			fmt.Fprintf(e.stderr, "wrote %s (%s, %.2f MiB, %.1f s)\n", out, ft, float64(st.Size())/(1<<20), time.Since(t0).Seconds())
			return nil
		},
	}
	mf.register(c)
	c.Flags().StringVarP(&out, "out", "o", "", "output .gguf file")
	def := "F32"
	if quantize {
		def = "Q8_0"
	}
	c.Flags().StringVar(&typ, "type", def, "llama.cpp recipe: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS")
	return c
}

// printPlan prints every matrix's type (and what a fallback replaced), then
// the count and size per type.
func printPlan(w io.Writer, plan []gguf.Choice) {
	type agg struct{ n, bytes int }
	by := map[quant.DType]*agg{}
	var order []quant.DType
	fallbacks := 0
	for _, c := range plan {
		note := ""
		if c.Wanted != c.Type {
			note = fmt.Sprintf("  (fallback: rows of %d do not fit %s)", c.Cols, c.Wanted)
			fallbacks++
		}
		fmt.Fprintf(w, "  %-32s %6d x %-6d %-6s %9.3f MiB%s\n", c.Name, c.Rows, c.Cols, c.Type, float64(c.Bytes())/(1<<20), note)
		a := by[c.Type]
		if a == nil {
			a = &agg{}
			by[c.Type] = a
			order = append(order, c.Type)
		}
		a.n++
		a.bytes += c.Bytes()
	}
	var parts []string
	for _, t := range order {
		parts = append(parts, fmt.Sprintf("%s: %d (%.2f MiB)", t, by[t].n, float64(by[t].bytes)/(1<<20)))
	}
	fmt.Fprintf(w, "matrices: %s; %d fallback(s)\n", strings.Join(parts, ", "), fallbacks)
}

// printBench prints a bench result as text.
func (e *env) printBench(r *bench.Result) {
	bf16 := ""
	if r.WeightType == "bf16" {
		bf16 = map[bool]string{true: ", bf16 activations", false: ", float32 activations (MASQUE_BF16=exact)"}[r.BF16Rounded]
	}
	fmt.Fprintf(e.stdout, "model    %s (%s, %d parameters, KV cache %s)\nkernels  %s, %d threads%s\n", r.Model, r.WeightType, r.ParamCount, r.CacheType, r.Kernels, r.Threads, bf16)
	fmt.Fprintf(e.stdout, "prefill  %.1f tokens/s (%d tokens, runs %v)\n", r.PrefillTokS, r.PromptTokens, fmtRuns(r.PrefillRuns))
	fmt.Fprintf(e.stdout, "decode   %.2f tokens/s (%.2f ms/token, runs %v)\n", r.DecodeTokS, r.DecodeMsPerTok, fmtRuns(r.DecodeRuns))
	fmt.Fprintf(e.stdout, "peak RSS %.1f MiB\n", float64(r.PeakRSSBytes)/(1<<20))
	if bw := r.Bandwidth; bw != nil {
		fmt.Fprintf(e.stdout, "memory   %.2f GB/s best, %.2f median (read, %d threads, %d MiB × %d, runs %v)\n",
			bw.BestGBs, bw.MedianGBs, bw.Threads, bw.BufferBytes>>20, bw.Reps, fmtRunsPrec(bw.RunsGBs, 2))
		fmt.Fprintf(e.stdout, "bound    %.2f tokens/s (best bandwidth ÷ %.2f MiB of weights per token)\n", r.BoundTokS, float64(r.WeightBytesPerToken)/(1<<20))
		if r.GenTokens > 0 {
			fmt.Fprintf(e.stdout, "decode   %.2f of the bound (runs %v)\n", r.DecodeOfBound, fmtRunsPrec(r.DecodeOfBoundRuns, 2))
		}
	}
}
