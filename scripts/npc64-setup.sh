#!/usr/bin/env bash
# npc64-setup.sh - builds the personas of the NPC scenario (loadtest/scenarios/npc64.yaml):
# the nine voices of builtin:voices as prompt-only personas, plus seven personas over the
# same base with masks and LoRA adapters made here by masque itself:
#   FFN-channel masks   devil-ffn, jargon-ffn, webster-ffn   (masque subnet --structured)
#   unstructured masks  kjv-wanda (50 % per row), sotu-24 (2:4)  (masque subnet)
#   LoRA adapters       wesnoth-lora, spurgeon-lora           (masque finetune, 12 steps, rank 8)
# each calibrated or trained on its voice's validation split of the built-in voices kit,
# and the registry OUT/personas.json that names all sixteen (each derived persona with its
# voice's system prompt).
#
# Usage: bash scripts/npc64-setup.sh [OUT]   (default: loadtest/scenarios/npc64, ignored by git)
#        MASQUE=/path/to/masque bash scripts/npc64-setup.sh   (default: masque on the PATH)
#
# Run it from the repository root. Steps already done are skipped. About two minutes of CPU
# on 2 cores; THREADS (default 2) bounds the threads each step uses.
set -euo pipefail
O=${1:-loadtest/scenarios/npc64}
M=${MASQUE:-masque}
T=${THREADS:-2}
KIT=internal/builtin/voiceskit
command -v jq >/dev/null || { echo "npc64-setup.sh: needs jq (apt-get install jq)" >&2; exit 1; }
[ -f "$KIT/personas.json" ] || { echo "npc64-setup.sh: run it from the repository root ($KIT not found)" >&2; exit 1; }
mkdir -p "$O"

mask() { # NAME VOICE FLAGS...: a mask calibrated on the voice's validation conversations
	local name=$1 voice=$2
	shift 2
	[ -f "$O/$name.mask.safetensors" ] && return
	"$M" subnet --model builtin:voices --method wanda "$@" --calib-chat "$KIT/$voice/valid.jsonl" \
		--workers "$T" --out "$O/$name.mask.safetensors"
}
adapter() { # NAME VOICE: a small LoRA adapter trained on the voice's validation conversations
	[ -f "$O/$1/adapter_model.safetensors" ] && return
	"$M" finetune --model builtin:voices --data "$KIT/$2/valid.jsonl" --out "$O/$1" --steps 12 --batch-tokens 1024 --lr 1e-3 \
		--lora-rank 8 --eval-fraction 0 --checkpoint-every 0 --threads "$T" --seed 1
}
mask devil-ffn devil --structured --sparsity 0.25
mask jargon-ffn jargon --structured --sparsity 0.25
mask webster-ffn webster --structured --sparsity 0.25
mask kjv-wanda kjv --sparsity 0.5
mask sotu-24 sotu --nm 2:4
adapter wesnoth-lora wesnoth
adapter spurgeon-lora spurgeon

# The registry: the nine voices as they are, then the derived personas with their voice's prompt.
jq '([.voices[] | {key: .name, value: .}] | from_entries) as $by
| {personas: (
	[.voices[] | {name, description: .title, system_prompt: .persona}] +
	([ {n: "devil-ffn", v: "devil", mask: "devil-ffn.mask.safetensors"},
	   {n: "jargon-ffn", v: "jargon", mask: "jargon-ffn.mask.safetensors"},
	   {n: "webster-ffn", v: "webster", mask: "webster-ffn.mask.safetensors"},
	   {n: "kjv-wanda", v: "kjv", mask: "kjv-wanda.mask.safetensors"},
	   {n: "sotu-24", v: "sotu", mask: "sotu-24.mask.safetensors"},
	   {n: "wesnoth-lora", v: "wesnoth", lora: "wesnoth-lora"},
	   {n: "spurgeon-lora", v: "spurgeon", lora: "spurgeon-lora"} ]
	 | map({name: .n, description: ($by[.v].title + " (" + .n + ")"), system_prompt: $by[.v].persona}
		+ (if .mask then {mask} else {} end) + (if .lora then {lora} else {} end))))}' "$KIT/personas.json" >"$O/personas.json.tmp"
mv "$O/personas.json.tmp" "$O/personas.json"
echo "npc64-setup.sh: $O/personas.json names $(jq '.personas | length' "$O/personas.json") personas"
