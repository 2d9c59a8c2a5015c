#!/usr/bin/env bash
# sculpt-voices.sh - the Persona-Pruner measurement of docs/BENCHMARKS.md: every voice of
# builtin:voices at 25 % and 50 % FFN pruning, against every baseline and one global mask,
# a second seed of each persona's mask, and the report over all of it.
#
# Usage: bash scripts/sculpt-voices.sh [CORPUS] [OUT]   (defaults: corpus/voices runs/sculpt)
#
# CORPUS is the full voices corpus (`masque corpus voices --out corpus/voices`; its train
# splits are the personas' data). Resumable: finished steps are skipped, an interrupted
# one continues (each masque command resumes its own --out). Roughly 10 minutes per
# comparison on 2 cores.
set -euo pipefail
C=${1:-corpus/voices}
O=${2:-runs/sculpt}
VOICES="kjv web spurgeon sotu jargon webster wordnet wesnoth devil"
mkdir -p "$O"
# resume DIR: --resume when DIR holds an interrupted run's checkpoint.
resume() { [ -d "$1/checkpoint" ] && echo --resume || true; }
for R in 0.25 0.5; do
	# One global mask per ratio (all voices pooled, at most 1,500 rows each), shared by
	# every persona's comparison.
	if [ ! -f "$O/global-$R/run.json" ]; then
		masque sculpt --global --corpus "$C" --ratio "$R" --max-rows 1500 --no-export --out "$O/global-$R" $(resume "$O/global-$R")
	fi
	for P in $VOICES; do
		[ -f "$O/cmp-$P-$R/compare.json" ] && continue
		masque sculpt compare --persona "$P" --corpus "$C" --ratio "$R" --global-run "$O/global-$R" \
			--out "$O/cmp-$P-$R" --json >"$O/cmp-$P-$R.json"
	done
done
for P in $VOICES; do
	[ -f "$O/seed2-$P/run.json" ] && continue
	masque sculpt --persona "$P" --corpus "$C" --ratio 0.25 --seed 2 --no-export --out "$O/seed2-$P" $(resume "$O/seed2-$P")
done
masque sculpt report --corpus "$C" --out "$O/report" "$O"/cmp-*-0.25 "$O"/cmp-*-0.5 "$O"/seed2-*
echo "report: $O/report/summary.html"
