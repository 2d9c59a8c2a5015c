#!/usr/bin/env python3
"""Golden persona-sensitivity scores for TestSensitivityGolden (synth/sensitivity_test.go).

Runs shared/reference/torch_ref.py's float64 forward pass on testdata/hf-tiny/qwen2 (3 layers)
and computes s = 1 - mean over reference prompts R, mean over layers l in [first, last], of
cos(h_l(P), h_l(R)) for the last token, where h_l is Hugging Face's hidden_states[l]: the
residual stream entering layer l for l < L, and the output of the final norm for l == L.
The "prenorm" line takes the stream leaving the last layer instead (masque before the fix).

usage: python3 sensitivity_golden.py /path/to/torch_ref.py /path/to/testdata/hf-tiny/qwen2
"""
import importlib.util
import sys

import torch

spec = importlib.util.spec_from_file_location("torch_ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
cfg, P = ref.load_model(sys.argv[2], torch.float64)
L = cfg.num_layers

# The prompts of the Go test: a persona's "system part" then a shared question part.
question = [40, 41, 42, 43, 44]
prompts = [[1, 7, 9, 11, 13] + question, [1, 8, 10, 12] + question, [1, 200, 300, 400, 500, 6] + question]


def states(ids, prenorm):
    rec = []
    with torch.no_grad():
        ref.forward(cfg, P, ids=torch.tensor([ids]), record=rec)
    hs = rec[:L] + [rec[L] if prenorm else rec[L + 1]]  # hidden_states[0..L]
    return [h[0, -1] for h in hs]


def score(first, last, prenorm=False):
    t = states(prompts[0], prenorm)
    tot = 0.0
    for r in prompts[1:]:
        s = states(r, prenorm)
        tot += sum(torch.nn.functional.cosine_similarity(t[l], s[l], dim=0).item() for l in range(first, last + 1)) / (last - first + 1)
    return 1 - tot / (len(prompts) - 1)


for first, last in [(1, 3), (3, 3), (0, 2)]:
    print(f"layers {first}..{last}: hf {score(first, last)!r} prenorm {score(first, last, True)!r}")
