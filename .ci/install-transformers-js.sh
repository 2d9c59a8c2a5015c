#!/usr/bin/env bash
# Installs transformers.js (npm @huggingface/transformers) for the tokenizer
# trainer's agreement test (tokenizer/bpetrain: TestTransformersJS runs the
# trained tokenizer through it under node). The test looks in
# $MASQUE_TRANSFORMERS_JS, else in the user cache folder
# (${XDG_CACHE_HOME:-$HOME/.cache}/masque/transformers-js), and skips when
# node or the package is missing, so a failed install only warns. Install
# scripts are not run (onnxruntime's binaries are not needed for tokenizers).
# Safe to run twice.
set -uo pipefail
version=4.3.1
dir="${MASQUE_TRANSFORMERS_JS:-${XDG_CACHE_HOME:-$HOME/.cache}/masque/transformers-js}"
pkg="$dir/node_modules/@huggingface/transformers/package.json"
if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then
	echo "transformers.js $version in $dir"
	exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "warning: node/npm not found; the transformers.js tokenizer test will be skipped" >&2
	exit 0
fi
mkdir -p "$dir" && cd "$dir" || exit 0
[ -f package.json ] || echo '{"private": true}' > package.json
if npm install --ignore-scripts --no-audit --no-fund --loglevel=error "@huggingface/transformers@$version"; then
	echo "transformers.js $version in $dir"
else
	echo "warning: could not install @huggingface/transformers; the transformers.js tokenizer test will be skipped" >&2
fi
exit 0
