"""Readers of the records that other scripts write (book layer; needs pandas): GPU step costs and the SmolLM2
cold-start curves. Figures are only ever read from records, never estimated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["T4_MEMORY_MIB", "gpu_step_table", "cold_curves_table", "cold_curves_summary", "wrap_command"]


def wrap_command(cmd: str, width: int = 75, indent: str = "    ") -> str:
    """The shell command ``cmd`` (a record's "recorded by" line) broken into lines of at most ``width``
    characters that still paste into a shell: each line but the last ends in a space and a backslash, the next ones
    start with ``indent``. An option stays on the line of its values where they fit; a single word longer
    than a line is left whole. Words are split on spaces, so quoting inside ``cmd`` is kept as it is."""
    if width < len(indent) + 10:
        raise ValueError(f"wrap_command: width={width} leaves no room beside indent={indent!r}")
    units: list[list[str]] = []  # an option and its values, or a leading word
    for word in cmd.split():
        if units and not word.startswith("-") and units[-1][0].startswith("-"):
            units[-1].append(word)
        else:
            units.append([word])
    lines: list[str] = []
    line = ""
    for unit in units:
        for i, word in enumerate(unit):
            # the first word of a unit may start a new line; its values join it while the line has room
            need = len(line) + 1 + len(word) + 2  # the space before it and the trailing " \\"
            if line and (need > width or (i == 0 and len(line) + 1 + len(" ".join(unit)) + 2 > width)):
                lines.append(line + " \\")
                line = indent + word
            else:
                line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Measured step cost at the paper's scale (benchmarks/gpu_step.py records)
# ---------------------------------------------------------------------------------------------------------
#: the memory a Colab T4 gives PyTorch, in MiB (14.74 GiB of its 16 GB)
T4_MEMORY_MIB = 14.74 * 1024


def gpu_step_table(paths: Sequence[str | os.PathLike]):
    """One row per (M, rationale budget) of the JSON records that ``benchmarks/gpu_step.py --json`` writes:
    hardware, date, command, scoring schedule, autocast dtype, step / generate seconds, tokens per second and
    the peak memory of the rollout and of the training phase (allocated and reserved, MiB), an OOM noted as
    such. ``fits 16 GB T4`` compares the larger peak *reserved* memory with :data:`T4_MEMORY_MIB`; it is a
    statement about a T4 only for fp16 records (``autocast`` float16), the T4's arithmetic, and is left empty
    otherwise. Figures are only ever read from records: nothing is estimated."""
    import json

    import pandas as pd

    rows = []
    for p in paths:
        with open(p) as f:
            rec = json.load(f)
        args = rec.get("args", {})
        for r in rec.get("rows", []):
            resv = max(r.get("generate_peak_reserved_mb", float("nan")), r.get("train_peak_reserved_mb", float("nan")))
            fp16 = r.get("autocast") == "torch.float16"
            row = {
                "hardware": rec.get("hardware"),
                "date": rec.get("date"),
                "M": r["M"],
                "rationale budget": r["rationale_budget"],
                "prompt tokens": args.get("prompt_tokens"),
                "scoring": "two passes" if args.get("two_pass") else "one pass",
                "autocast": r.get("autocast"),
                "step s": r.get("step_s", float("nan")),
                "generate s": r.get("generate_s", float("nan")),
                "generated tok/s": r.get("generated_tok_per_s", float("nan")),
                "scored tok/s": r.get("scored_tok_per_s", float("nan")),
                # GPU: peak allocated; CPU (smoke runs): the process's peak resident memory
                "rollout peak alloc MiB": r.get(
                    "generate_peak_allocated_mb", r.get("generate_peak_rss_mb", float("nan"))
                ),
                "train peak alloc MiB": r.get("train_peak_allocated_mb", r.get("train_peak_rss_mb", float("nan"))),
                "peak reserved MiB": resv,
                "OOM": "oom" in r,
                "fits 16 GB T4": (bool(resv <= T4_MEMORY_MIB) and "oom" not in r) if fp16 else None,
                "command": rec.get("command"),
                "file": os.path.basename(str(p)),
            }
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Cold start on a real LM (scripts/run_smollm2_cold_curves.py records)
# ---------------------------------------------------------------------------------------------------------
def cold_curves_table(record: dict, names: dict | None = None):
    """Per (q, prompt): log wbar on the fixed rationale pool before and after training, its rise, and the
    prompt's rank by its starting value (0 = the coldest), from a ``scripts/run_smollm2_cold_curves.py`` record.
    ``names`` maps a prompt's id to what the table shows for it (e.g. its question); ids not in it show as is."""
    import pandas as pd

    names = names or {}
    rows = []
    for run in record["runs"]:
        before, after = run["log_wbar_before"], run["log_wbar_after"]
        order = sorted(range(len(before)), key=lambda i: before[i])
        for i, pid in enumerate(run["ids"]):
            rows.append(
                {
                    "q": run["q"],
                    "prompt": names.get(pid, pid),
                    "start rank (0 = coldest)": order.index(i),
                    "log wbar before": before[i],
                    "log wbar after": after[i],
                    "rise": after[i] - before[i],
                }
            )
    return pd.DataFrame(rows)


def cold_curves_summary(record: dict):
    """Per q: the mean rise of log wbar over the prompts, the rise of the coldest and of the warmest prompt
    (by their starting log wbar), the lowest log wbar after training, how many prompts end above log wbar = -1
    (p(y*|x) > 0.37 on the pool) and how many fell, and the correlation between a prompt's
    starting log wbar and its rise (positive: the likelier prompts gain most, as a weight P predicts at q = 0;
    negative: the coldest gain most)."""
    import numpy as np
    import pandas as pd

    t = cold_curves_table(record)
    out = []
    for q, g in t.groupby("q", sort=True):
        cold = g.loc[g["start rank (0 = coldest)"].idxmin()]
        warm = g.loc[g["start rank (0 = coldest)"].idxmax()]
        corr = float(np.corrcoef(g["log wbar before"], g["rise"])[0, 1]) if len(g) > 2 else float("nan")
        out.append(
            {
                "q": q,
                "mean rise": g["rise"].mean(),
                "rise of the coldest": cold["rise"],
                "rise of the warmest": warm["rise"],
                "min log wbar after": g["log wbar after"].min(),
                "prompts learnt (log wbar > -1)": int((g["log wbar after"] > -1.0).sum()),
                "prompts that fell": int((g["rise"] < 0).sum()),
                "corr(start, rise)": corr,
            }
        )
    return pd.DataFrame(out).set_index("q")
