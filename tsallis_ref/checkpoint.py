"""Atomic, resumable checkpoints.

A checkpoint holds everything a resumed run needs to continue with identical state: the trainable weights
(the LoRA adapter, or the full model), the optimiser state, the RNG states (python, numpy, torch CPU and
CUDA, PAFT's resampling generator), the step, and the data order (epoch permutation and position).
It is written to ``<file>.tmp`` and moved into place with ``os.replace``, so a run killed mid-write leaves
the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

__all__ = ["CKPT_NAME", "rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint", "checkpoint_path"]

CKPT_NAME = "checkpoint.pt"


def checkpoint_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / CKPT_NAME


def rng_state(generator: Optional[torch.Generator] = None) -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def set_rng_state(st: dict, generator: Optional[torch.Generator] = None) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"])


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """``torch.save(state)`` to ``path`` atomically (tmp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume (run without --resume first)")
    return torch.load(path, map_location="cpu", weights_only=False)
