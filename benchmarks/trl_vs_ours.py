"""Side-by-side step time and peak memory: TRL's GRPOTrainer vs our GARL/PAFT TRL trainers vs our own trainer.

Same tiny random Llama (built from a config), same prompts, same M, same completion length for every
runner. Each runner runs in its own subprocess (so that peak RSS is its own), one after the other, and
the parent prints one table.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/trl_vs_ours.py            # CPU defaults
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/trl_vs_ours.py --M 16 --length 64 --hidden 128

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

    tok = trl_tokenizer()
    model = trl_model(tok, hidden_size=a.hidden, layers=a.layers, heads=a.heads, seed=0)
    steps = a.warmup + a.steps
    ds = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in _prompts(a.prompts * steps)])
    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"bench_{kind}_"),
        per_device_train_batch_size=a.prompts * a.M,
        num_generations=a.M,
        max_completion_length=a.length,
        generation_kwargs={"min_new_tokens": a.length},
        gradient_accumulation_steps=1,
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
    out = {
        "step_times": times[w:],
        "wall_times": walls[w:],
        "gen_times": gens[w:],
        "score_times": scores[w:],
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
    data_path = Path(cfg["output_dir"]) / "examples.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in _prompts(a.prompts * steps)))
    cfg["data"] = {"path": str(data_path), "shuffle": False}
    stamps: list[float] = []
    walls: list[float] = []
    gen_acc: list[float] = []  # the rollout phase of each step, timed by the step itself (CPU time)
    n_tok: list[float] = []
    try:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        # one throw-away step first, so that lazy imports and allocator growth are not counted as training memory
        train({**cfg, "steps": 1, "output_dir": cfg["output_dir"] + "_warm"}, examples=_prompts(a.prompts))
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

        with mon:
            t_start, w_start = time.process_time(), time.perf_counter()
            train(cfg, examples=_prompts(a.prompts * steps), callback=on_step, clock=time.process_time)
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
        "score_times": [],
        "peak_rss_mb": mon.peak,
        "base_rss_mb": base,
        # tokens sampled per rationale (it stops at EOS or at the marker, so it can be below --length)
        "mean_completion_length": statistics.mean(n_tok[w:]) / (a.prompts * a.M) if n_tok[w:] else None,
        "version": "tsallis_ref.trainer",
    }
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


RUNNERS = ["trl_grpo", "trl_garl", "trl_paft", "ours_garl", "ours_paft"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--M", type=int, default=8, help="completions / rationales per prompt")
    p.add_argument("--prompts", type=int, default=2, help="prompts per optimizer step")
    p.add_argument("--length", type=int, default=32, help="completion (rationale) tokens")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--q", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=4, help="timed steps")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runners", default=",".join(RUNNERS))
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="rounds over all runners (round-robin); the table keeps each runner's fastest round, "
        "which is the most robust statistic on a shared, busy machine",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()

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
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
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

    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()} "
        f"{os.cpu_count()} cores, torch {torch.__version__}, threads/process {a.threads}; "
        f"M={a.M} prompts/step={a.prompts} length={a.length} hidden={a.hidden} layers={a.layers}; "
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
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))


if __name__ == "__main__":
    main()
