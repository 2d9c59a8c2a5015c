#!/usr/bin/env bash
# train-voices.sh - retrain builtin:voices from its sources, exactly as shipped.
#
# Usage: bash scripts/train-voices.sh [WORKDIR]   (default: ./voices-train)
#
# Needs the voices sources (`sudo bash scripts/install-voices.sh`, Debian 12) and a
# `masque` binary on PATH (`go build -o /usr/local/bin/masque ./cmd/masque`).
# Pretraining is deterministic for a seed, a thread count and a kernel level, and a
# resumed run equals an uninterrupted one bit for bit, so on the same kernel level
# (avx512 here) these commands give the weights in internal/builtin/voices
# (about 100 minutes of pretraining on 2 cores). Interrupted? Run the pretrain line
# again with --resume.
#
# CONTINUE=3000 continues the run to that many steps (the cosine is recomputed over
# the new total: a warm restart); the model card's "A longer run" section measured
# 3,000 steps: lower validation loss, but worse greedy fidelity, so it is not shipped.
set -euo pipefail
W=${1:-voices-train}
mkdir -p "$W"
masque corpus voices --out "$W/corpus"
masque tokenizer train --data "$W/corpus" --vocab-size 8192 --out "$W/tokenizer"
common=(--corpus "$W/corpus" --tokenizer "$W/tokenizer" --preset voices-base --out "$W/model"
        --eval-every 50 --eval-tokens 4096 --checkpoint-every 50 --threads 2 --seed 1)
masque pretrain "${common[@]}" --steps 1600
if [ -n "${CONTINUE:-}" ]; then
	masque pretrain "${common[@]}" --steps "$CONTINUE" --resume
fi
echo "model: $W/model (compare: sha256sum $W/model/model.safetensors internal/builtin/voices/model.safetensors)"
