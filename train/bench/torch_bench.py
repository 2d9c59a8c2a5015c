#!/usr/bin/python3
"""Time one forward+backward pass of a Llama decoder in PyTorch (float32), the
counterpart of masque's BenchmarkTrainStep (train/bench_test.go).

Config (the ~20M-parameter benchmark model): hidden 512, 8 layers, 8 heads
(8 KV heads), head_dim 64, d_ff 1376, vocabulary 8192, untied head, one
sequence of 256 tokens, loss = mean cross-entropy over all positions,
gradients for every parameter.

The model is torch_ref.py's functional forward (pass --torch-ref PATH to the
project's reference implementation) or, without it, the same computation
written out below (rotate-half RoPE, RMSNorm, SiLU-gated MLP, causal
softmax attention): both give the same timings.

Run with the system Python and Debian's python3-torch:
    /usr/bin/python3 train/bench/torch_bench.py --threads 2 [--torch-ref ../shared/reference/torch_ref.py]
"""
import argparse
import importlib.util
import json
import math
import time

import torch
import torch.nn.functional as F

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512,
    "intermediate_size": 1376, "num_hidden_layers": 8, "num_attention_heads": 8,
    "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 8192, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu",
    "attention_bias": False, "mlp_bias": False, "rope_scaling": None,
}


def local_params(seed):
    g = torch.Generator().manual_seed(seed)
    c = CONFIG
    H, I, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    q = c["num_attention_heads"] * c["head_dim"]
    kv = c["num_key_value_heads"] * c["head_dim"]
    shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                       p + "self_attn.q_proj.weight": [q, H], p + "self_attn.k_proj.weight": [kv, H],
                       p + "self_attn.v_proj.weight": [kv, H], p + "self_attn.o_proj.weight": [H, q],
                       p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                       p + "mlp.down_proj.weight": [H, I]})
    out = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            out[name] = 1.0 + 0.2 * (torch.rand(shape, generator=g) - 0.5)
        else:
            out[name] = 0.02 * torch.randn(shape, generator=g)
    return out


def local_forward(P, ids):
    c = CONFIG
    nh, nkv, D, eps = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["rms_norm_eps"]
    x = F.embedding(ids, P["model.embed_tokens.weight"])
    B, T, _ = x.shape
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2).float() / D))
    f = torch.arange(T).float()[:, None] * inv[None, :]
    emb = torch.cat((f, f), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = norm(x, P[p + "input_layernorm.weight"])
        q = (h @ P[p + "self_attn.q_proj.weight"].t()).view(B, T, nh, D).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].t()).view(B, T, nkv, D).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].t()).view(B, T, nkv, D).transpose(1, 2)
        q = q * cos + rot(q) * sin
        k = k * cos + rot(k) * sin
        rep = nh // nkv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) * (D ** -0.5)
        s = s.masked_fill(~causal, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, nh * D)
        x = x + a @ P[p + "self_attn.o_proj.weight"].t()
        h = norm(x, P[p + "post_attention_layernorm.weight"])
        g = h @ P[p + "mlp.gate_proj.weight"].t()
        u = h @ P[p + "mlp.up_proj.weight"].t()
        x = x + (F.silu(g) * u) @ P[p + "mlp.down_proj.weight"].t()
    x = norm(x, P["model.norm.weight"])
    return x @ P["lm_head.weight"].t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--torch-ref", default="", help="path of torch_ref.py to take the model from")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.torch_ref:
        spec = importlib.util.spec_from_file_location("torch_ref", a.torch_ref)
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        cfg = ref.Config(dict(CONFIG))
        params = ref.random_params(cfg, 1)

        def fwd(P, ids):
            return ref.forward(cfg, P, ids=ids)
        impl = "torch_ref.forward"
    else:
        params = local_params(1)
        fwd = local_forward
        impl = "local"
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, CONFIG["vocab_size"], (1, a.seq + 1), generator=g)
    inp, tgt = ids[:, :-1], ids[:, 1:]

    def step():
        leaves = {n: t.detach().requires_grad_(True) for n, t in params.items()}
        logits = fwd(leaves, inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        loss.backward()
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best, med = min(times), sorted(times)[len(times) // 2]
    print(json.dumps({"impl": impl, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "seq": a.seq, "params": sum(t.numel() for t in params.values()),
                      "median_s": round(med, 4), "best_s": round(best, 4),
                      "tokens_per_s_median": round(a.seq / med, 1), "tokens_per_s_best": round(a.seq / best, 1)}))


if __name__ == "__main__":
    main()
