#!/usr/bin/env python3
"""voices_golden.py - PyTorch goldens for the built-in voices model.

Runs the independent PyTorch reference (shared/reference/torch_ref.py, float64)
on the builtin:voices Hugging Face folder and writes a compact golden file: for
each sequence and position, the log-sum-exp of the logits, the five largest
logits with their ids, and the logits at 32 fixed ids (every 256th). The test
checkpoint/TestVoicesMatchesPyTorch compares masque's logits with it.

  /usr/bin/python3 scripts/voices_golden.py --ref ../shared/reference/torch_ref.py \
      --model internal/builtin/voices --out checkpoint/testdata/voices-golden.json

The token ids come from masque (`masque tokenize --model builtin:voices --json`),
written to a JSON file given as --seqs.
"""
import argparse, importlib.util, json, sys
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seqs", required=True, help="JSON file: [{\"text\":..., \"ids\":[...]}, ...]")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("torch_ref", a.ref)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    cfg, P = ref.load_model(a.model, torch.float64)
    seqs = json.load(open(a.seqs))
    out = {"model": "builtin:voices", "reference": "shared/reference/torch_ref.py, float64", "sequences": []}
    fixed = list(range(0, cfg.vocab_size, 256))
    for s in seqs:
        ids = torch.tensor([s["ids"]], dtype=torch.long)
        with torch.no_grad():
            logits = ref.forward(cfg, P, ids=ids)[0]
        rows = []
        for t in range(logits.shape[0]):
            l = logits[t]
            top = torch.topk(l, 5)
            rows.append({
                "lse": float(torch.logsumexp(l, 0)),
                "top_ids": [int(i) for i in top.indices],
                "top": [float(v) for v in top.values],
                "fixed": [float(l[i]) for i in fixed],
            })
        out["sequences"].append({"text": s["text"], "ids": s["ids"], "positions": rows})
    out["fixed_ids"] = fixed
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")

if __name__ == "__main__":
    main()
