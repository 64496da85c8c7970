"""The metrics sink of a training run: one JSONL line per step, and TensorBoard / W&B when requested and
installed. The names of the logged diagnostics are listed in :data:`tsallis_ref.estimators.METRIC_NAMES`.
:func:`write_json` writes the JSON record of a benchmark or a recorded run (``benchmarks/``, ``scripts/``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from .config import TrainConfig

__all__ = ["MetricsLogger", "write_json"]


class MetricsLogger:
    """Metrics as JSONL (one line per step), and to TensorBoard / W&B when requested and installed."""

    def __init__(self, output_dir: Path, cfg: TrainConfig, resume_step: Optional[int] = None):
        self.path = output_dir / "metrics.jsonl"
        if resume_step is None:
            self.path.write_text("")
        else:  # drop the lines a killed run wrote after its last checkpoint
            keep = []
            if self.path.exists():
                for line in self.path.read_text().splitlines():
                    try:
                        if json.loads(line)["step"] <= resume_step:
                            keep.append(line)
                    except (json.JSONDecodeError, KeyError):  # a line cut short by the kill
                        continue
            self.path.write_text("".join(l + "\n" for l in keep))
        self.tb = self.wb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(output_dir / "tb"))
            except Exception:
                self.tb = None
        if cfg.wandb:
            try:
                import wandb  # type: ignore

                self.wb = wandb.init(project="tsallis-ref", config=cfg.to_dict(), resume="allow")
            except Exception:
                self.wb = None

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **metrics}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        if self.wb is not None:
            self.wb.log(metrics, step=step)

    def close(self):
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


def write_json(path, record, *, compact: bool = False) -> Path:
    """Write ``record`` as JSON to ``path``, creating its folder: indented by one space, or without white space
    when ``compact`` (records of large grids of runs). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, **({"separators": (",", ":")} if compact else {"indent": 1}))
    return path
