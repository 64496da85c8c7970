"""Command line: ``python -m tsallis_ref train --config FILE [--set KEY=VALUE ...] [--resume]``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parse_set(items):
    """``--set method.q=0.5`` style overrides into a nested dict (values parsed as YAML scalars)."""
    import yaml

    from .config import ConfigError

    out: dict = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. method.q=0.5); got {it!r}")
        key, val = it.split("=", 1)
        try:
            value = yaml.safe_load(val)
        except yaml.YAMLError:
            raise ConfigError(
                f"--set {key}: the value {val!r} is not valid YAML; quote it (e.g. {key}='\"{val}\"')"
            ) from None
        d = out
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ConfigError(f"--set {key}: an earlier --set gave `{p}` a value, not a mapping of fields")
        d[parts[-1]] = value
    return out


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n"))


def main(argv=None) -> int:
    from . import __version__
    from .config import fields_help

    parser = argparse.ArgumentParser(
        prog="python -m tsallis_ref",
        description="tsallis-ref: GARL / PAFT / GRPO / RLOO post-training on the J_Q continuum",
    )
    parser.add_argument("--version", action="version", version=f"tsallis-ref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train a causal LM as a YAML config says",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train with GARL (Algorithm 1), PAFT (Algorithm 2), GRPO or RLOO. "
        "Examples come from data.path (JSONL of {id, prompt, answer}) or data.dataset.",
        epilog="config fields (YAML keys, nested as the dots say; `base: other.yaml` in a config "
        "file merges that file in first;\noverride any field with --set KEY=VALUE, the "
        "value read as YAML):\n" + fields_help(),
    )
    t.add_argument("--config", required=True, help="YAML config (see configs/*.yaml)")
    t.add_argument(
        "--resume", action="store_true", help="continue from <output_dir>/checkpoint.pt with identical state"
    )
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set method.q=0.5 (repeatable; the fields are listed below)",
    )
    args = parser.parse_args(argv)

    if args.command == "train":
        from .checkpoint import CheckpointError
        from .config import ConfigError, load_config

        try:
            cfg = load_config(args.config, _parse_set(args.set))
        except ConfigError as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        from .trainer import train

        try:
            res = train(cfg, resume=args.resume)
        except (ConfigError, CheckpointError, FileNotFoundError) as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        last = res["metrics"][-1] if res["metrics"] else {}
        print(f"done: step {res['step']}; output in {cfg.output_dir}; last loss {last.get('loss', float('nan')):.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
