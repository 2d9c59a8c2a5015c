#!/usr/bin/env bash
# Side-by-side speed comparison of masque and llama.cpp (the anchor) on the
# same GGUF files, back to back, alternating, several repetitions.
#
#   bench/compare.sh [MODEL_DIR_OR_PRESET] [TYPES]
#
# Environment: ANCHOR (path to the anchor binary; default: build
# ../shared/tools/anchor into $SCRATCH/anchor), SCRATCH (work folder, default
# /tmp/masque-bench), REPS (alternations, default 3), THREADS (default 2),
# PROMPT (prompt tokens, default 128), GEN (decode tokens, default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-/tmp/masque-bench}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128}
GEN=${GEN:-64}
SRC=${1:-qwen2.5-0.5b}
TYPES=${2:-"f32 bf16 q8_0 q4_0"}
mkdir -p "$SCRATCH"

if [ -z "${ANCHOR:-}" ]; then
	ANCHOR=$SCRATCH/anchor/anchor
	if [ ! -x "$ANCHOR" ]; then
		rm -rf "$SCRATCH/anchor" && cp -r ../shared/tools/anchor "$SCRATCH/anchor"
		(cd "$SCRATCH/anchor" && chmod +x build.sh && ./build.sh)
	fi
fi
go build -o "$SCRATCH/masque" ./cmd/masque
M=$SCRATCH/masque

if [ -d "$SRC" ]; then
	HF=$SRC
else
	HF=$SCRATCH/$SRC-hf
	[ -f "$HF/config.json" ] || "$M" random --preset "$SRC" --dtype bf16 --out "$HF"
fi

printf "%-6s %-8s %12s %12s %12s %12s %8s %8s %8s\n" type engine prefill_tok/s "" decode_tok/s "" rss_MiB "" ""
for t in $TYPES; do
	G=$SCRATCH/$(basename "$HF")-$t.gguf
	[ -f "$G" ] || "$M" convert --model "$HF" --type "$t" --out "$G"
	for r in $(seq "$REPS"); do
		"$M" bench --model "$G" --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --threads "$THREADS" --reps 1 --json >"$SCRATCH/m-$t-$r.json"
		"$ANCHOR" bench --gguf "$G" --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --threads "$THREADS" --reps 1 >"$SCRATCH/a-$t-$r.json" 2>/dev/null
	done
	python3 - "$SCRATCH" "$t" "$REPS" <<'PY'
import json, statistics, sys
d, t, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = [json.load(open(f"{d}/m-{t}-{r}.json")) for r in range(1, reps + 1)]
a = [json.load(open(f"{d}/a-{t}-{r}.json")) for r in range(1, reps + 1)]
med = lambda xs: statistics.median(xs)
mp, md = med([x["prefill_tok_s"] for x in m]), med([x["decode_tok_s"] for x in m])
ap, ad = med([x["prefill_tok_s"] for x in a]), med([x["decode_tok_s"] for x in a])
mr = max(x["peak_rss_bytes"] for x in m) / 2**20
ar = max(x.get("rss_peak_mb", 0) for x in a)
print(f"{t:6s} masque   prefill {mp:8.1f} tok/s  decode {md:7.2f} tok/s  peak RSS {mr:7.0f} MiB")
if all("bandwidth_bound_tok_s" in x for x in m):
    bound = med([x["bandwidth_bound_tok_s"] for x in m])
    bw = med([x["bandwidth"]["best_gb_s"] for x in m])
    print(f"{t:6s} bound    {bound:8.1f} tok/s = {bw:.2f} GB/s ÷ {m[0]['weight_bytes_per_token']/2**20:.1f} MiB/token; masque decode {md/bound:.2f}, llama.cpp {ad/bound:.2f} of it")
print(f"{t:6s} llama.cpp prefill {ap:8.1f} tok/s  decode {ad:7.2f} tok/s  peak RSS {ar:7.0f} MiB")
print(f"{t:6s} ratio    prefill {mp/ap:8.2f}x       decode {md/ad:7.2f}x        RSS {mr/ar if ar else 0:7.2f}x")
PY
done
