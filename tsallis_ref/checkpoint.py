"""Atomic, resumable checkpoints that hold plain data only.

A checkpoint holds everything a resumed run needs to continue with identical state: the trainable weights
(the LoRA adapter, or the full model), the optimiser state, the RNG states (python, numpy, torch CPU and
CUDA, PAFT's resampling generator), the step, the data order (epoch permutation and position) and the config.

* **Plain data only.** A checkpoint may hold tensors, numbers, strings, booleans, ``None`` and lists, tuples and
  dicts of them (:func:`save_checkpoint` refuses anything else, naming the key). It is read with
  ``torch.load(weights_only=True)``, which never unpickles other objects: a crafted file cannot run code.
* **Atomic, with the previous one kept.** The new checkpoint is written to ``<file>.tmp`` and fsynced; the current
  one is then moved to ``checkpoint.prev.pt`` (a hard link renamed into place, so ``checkpoint.pt`` never
  disappears) and the new one moved into place with ``os.replace``. A run killed at any moment leaves at least
  one complete checkpoint; a latest file that is not a complete zip archive is overwritten, not kept.
* **Unreadable latest.** :func:`load_checkpoint` falls back to the previous checkpoint with a warning that names
  both files; when neither can be read it stops with a :class:`CheckpointError` naming the file and the fix.
* **Resuming checks the config** (:func:`load_for_resume`): every field must equal the checkpoint's, except those
  in :data:`RESUME_MAY_CHANGE` (the run's length, where it writes and logs, and memory knobs that leave the
  gradient unchanged).
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .config import ConfigError

__all__ = [
    "CKPT_NAME",
    "PREV_NAME",
    "RESUME_MAY_CHANGE",
    "CheckpointError",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "previous_path",
    "config_differences",
    "load_for_resume",
]

CKPT_NAME = "checkpoint.pt"
PREV_NAME = "checkpoint.prev.pt"

#: The config fields that may differ between a checkpoint and the run that resumes it, namely the run's length,
#: where it writes and logs, the device and thread count, and memory knobs whose gradient is the same
#: (micro-batches, logits chunks, two-pass scoring, shared-prefix encoding, generation batches). Every other field
#: must be equal.
RESUME_MAY_CHANGE = frozenset(
    {
        "steps",
        "output_dir",
        "checkpoint_every",
        "device",
        "num_threads",
        "tensorboard",
        "wandb",
        "progress_bar",
        "optim.micro_batch_size",
        "optim.logits_chunk",
        "optim.two_pass_scoring",
        "optim.shared_prefix",
        "rollout.generation_batch_size",
    }
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file and the fix."""


def checkpoint_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / CKPT_NAME


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def rng_state(generator: Optional[torch.Generator] = None) -> dict:
    """The RNG states as plain data (numpy's key array as a list of ints)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    st = {
        "python": random.getstate(),
        "numpy": (kind, key.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def set_rng_state(st: dict, generator: Optional[torch.Generator] = None) -> None:
    random.setstate(_as_tuples(st["python"]))
    kind, key, *rest = st["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"])


def _as_tuples(x):
    """random.setstate wants tuples (a JSON-like round trip may give lists)."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(obj, where: str = "state") -> None:
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(
                    f"checkpoint entry `{where}` has a key of type {type(k).__name__}; keys must be strings or ints"
                )
            _check_plain(v, f"{where}.{k}")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise CheckpointError(
        f"checkpoint entry `{where}` is a {type(obj).__module__}.{type(obj).__name__}; a "
        "checkpoint holds tensors, numbers, strings, booleans, None and lists / dicts of them "
        "(convert it, e.g. a numpy array with .tolist())"
    )


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (plain data, see the module docstring) to ``path`` atomically, keeping the previous
    checkpoint as :func:`previous_path`: tmp file + fsync, the old file linked to ``*.prev.pt``, ``os.replace``."""
    path = Path(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"a checkpoint is a dict; got {type(state).__name__}")
    _check_plain(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists() and zipfile.is_zipfile(path):  # a truncated latest (no zip directory) never replaces prev
        prev = previous_path(path)
        ptmp = prev.with_name(prev.name + ".tmp")
        if ptmp.exists():
            ptmp.unlink()
        try:
            os.link(path, ptmp)  # no copy: the same bytes under a second name
        except OSError:  # a file system without hard links
            shutil.copyfile(path, ptmp)
        os.replace(ptmp, prev)
    os.replace(tmp, path)
    try:  # make the renames durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def _legacy_numpy_globals() -> list:
    """The numpy array constructors of a checkpoint that holds numpy's RNG key as an array: plain data, allowed
    in the weights-only unpickler so that such a checkpoint resumes."""
    try:
        import numpy._core.multiarray as multiarray
    except ImportError:  # numpy < 2
        import numpy.core.multiarray as multiarray
    return [multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _read(path: Path) -> dict:
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, refused pickle, garbage: all unreadable
        raise CheckpointError(f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"it holds a {type(state).__name__}, not a dict")
    return state


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling anything but plain data.

    If ``path`` is missing or unreadable (truncated, corrupt, or holding other objects) and the previous checkpoint
    (:func:`previous_path`) reads, that one is returned with a ``RuntimeWarning`` naming both files. Otherwise
    raises ``FileNotFoundError`` (nothing to resume) or :class:`CheckpointError` naming the file and the fix.
    """
    path = Path(path)
    prev = previous_path(path)
    if not path.exists() and not prev.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume (run without --resume first)")
    if path.exists():
        try:
            return _read(path)
        except CheckpointError as e:
            reason = f"{path} is unreadable ({e})"
    else:
        reason = f"{path} is missing"
    if prev.exists():
        try:
            state = _read(prev)
        except CheckpointError as e:
            reason += f", and so is the previous checkpoint {prev} ({e})"
        else:
            warnings.warn(
                f"checkpoint {reason}; resuming from the previous checkpoint {prev} (step {state.get('step', '?')})",
                RuntimeWarning,
                stacklevel=2,
            )
            return state
    raise CheckpointError(
        f"checkpoint {reason}. Checkpoints hold plain data only and are read with "
        "torch.load(weights_only=True); a truncated or corrupt file, or one holding other "
        "objects, cannot be resumed. Fix: restore the file from a backup, or start the run again "
        "without --resume (or with another output_dir)."
    )


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in ("model.tiny", "model.arch_overrides"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_differences(saved: dict, current: dict, may_change=RESUME_MAY_CHANGE) -> list[str]:
    """The fields (dotted names) whose values differ between two ``TrainConfig.to_dict()``, other than those in
    ``may_change``, as ``"optim.lr: 0.01 in the checkpoint, 0.02 now"``. A field the saved config lacks (written
    by an older version) is not compared."""
    a, b = _flatten(saved), _flatten(current)
    return [
        f"{k}: {a[k]!r} in the checkpoint, {b.get(k)!r} now"
        for k in sorted(a)
        if k in b and k not in may_change and a[k] != b[k]
    ]


def load_for_resume(output_dir: str | Path, config: dict) -> dict:
    """The checkpoint of ``output_dir`` (:func:`load_checkpoint`), after checking that ``config`` (a
    ``TrainConfig.to_dict()``) matches the one it was written with, fields in :data:`RESUME_MAY_CHANGE` aside;
    raises :class:`~tsallis_ref.config.ConfigError` listing what differs."""
    path = checkpoint_path(output_dir)
    ck = load_checkpoint(path)
    saved = ck.get("config")
    if isinstance(saved, dict):
        diff = config_differences(saved, config)
        if diff:
            raise ConfigError(
                f"--resume: the config differs from the one {path} was written with: "
                + "; ".join(diff)
                + ". Set these back to resume, or start a new run in another "
                "output_dir (fields that may change on resume: " + ", ".join(sorted(RESUME_MAY_CHANGE)) + ")"
            )
    return ck
