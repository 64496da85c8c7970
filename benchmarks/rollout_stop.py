"""Rollout cost of stopping at the end-of-rationale marker: three ways, side by side in one run.

* ``stop_strings``: ``generate(..., stop_strings=[marker])``, transformers' ``StopStringCriteria`` (the
  trainer's rollout before this change);
* ``token_suffix``: ``generate(..., stop_token_ids=[marker_ids])``, ``rollout.StopOnTokenSuffix`` (what
  ``rollout.sample_rationales`` uses now);
* ``none``: no marker stop at all, stop at EOS or the budget and cut afterwards (what TRL does).

Same tiny random Llama as ``benchmarks/trl_vs_ours.py`` (``tsallis_ref.testing.trl_model``, hidden 64,
2 layers), the same contexts and the same seed for every variant; variants interleaved round by round in rotating order;
CPU time of this process (``time.process_time``, one thread) per ``generate`` call, median over rounds.
The rationales that ``rollout.finish_rationale`` makes of each variant's output are checked to be identical.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rollout_stop.py            # 16 x 32 tokens
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/rollout_stop.py --n 32 --length 128
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch

from tsallis_ref.config import SamplingConfig
from tsallis_ref.rollout import finish_rationale, generate
from tsallis_ref.testing import trl_model, trl_tokenizer

VARIANTS = ["stop_strings", "token_suffix", "none"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16, help="sequences per generate call")
    ap.add_argument("--length", type=int, default=32, help="max new tokens (rationale budget)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--marker", default="\nAnswer:")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    tok = trl_tokenizer()
    model = trl_model(tok, hidden_size=a.hidden, layers=a.layers, seed=0).eval()
    marker_ids = tok(a.marker, add_special_tokens=False).input_ids
    prompts = [tok(f"{i}+{i + 3}=?", add_special_tokens=False).input_ids for i in range(a.n)]
    kw = {"stop_strings": {"stop_strings": [a.marker]}, "token_suffix": {"stop_token_ids": [marker_ids]}, "none": {}}
    sampling = SamplingConfig()
    times = {v: [] for v in VARIANTS}
    outs = {}
    generate(model, tok, prompts, max_new_tokens=4, sampling=sampling)  # warm-up
    for r in range(a.rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for v in order:
            torch.manual_seed(1000 + r)
            t = time.process_time()
            g = generate(model, tok, prompts, max_new_tokens=a.length, sampling=sampling, **kw[v])
            times[v].append(time.process_time() - t)
            z = [finish_rationale(tok, ids, a.marker, marker_ids) for ids, _ in g]
            outs.setdefault(r, {})[v] = z
    same = all(len({repr(o[v]) for v in VARIANTS}) == 1 for o in outs.values())
    n_new = statistics.mean(len(z) for z, _ in outs[0]["none"])
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, torch "
        f"{torch.__version__}, threads {a.threads}; {a.n} sequences x {a.length} max new tokens, marker "
        f"{a.marker!r} ({len(marker_ids)} tokens), hidden {a.hidden}, layers {a.layers}; {a.rounds} rounds"
    )
    print(f"rationales identical across variants in every round: {same}; mean rationale length {n_new:.1f} tokens")
    base = statistics.median(times["none"])
    print(f"{'variant':<13} {'median CPU-s':>12} {'x none':>7} {'x stop_strings':>15}  per round")
    for v in VARIANTS:
        m = statistics.median(times[v])
        print(
            f"{v:<13} {m:>12.4f} {m / base:>7.3f} {m / statistics.median(times['stop_strings']):>15.3f}  "
            + " ".join(f"{x:.3f}" for x in times[v])
        )
    if not same:
        raise SystemExit("the variants produced different rationales")


if __name__ == "__main__":
    main()
