"""``s2cac synth``: generate the synthetic cardiac CT cohort (images, labels, cases.tsv, baseline, overview)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from s2cac.synth.config import SynthConfig


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (images/, labels/, cases.tsv, ...)")
    parser.add_argument("--config", help="YAML file holding a SynthConfig mapping (the workflow's dataset.synthetic)")
    parser.add_argument("--threads", type=int, default=1, help="worker processes (the output does not depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    group = parser.add_argument_group("generator options (override --config; see docs/synthetic.md)")
    for f in dataclasses.fields(SynthConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kwargs: dict[str, Any] = {"default": None, "dest": f"opt_{f.name}", "help": f"default {default!r}"}
        kwargs["metavar"] = "N" if isinstance(default, int) else "X"
        if isinstance(default, list):
            kwargs.update(nargs=len(default), type=type(default[0]), metavar=("LOW", "HIGH")[: len(default)])
            if len(default) == 3:
                kwargs["metavar"] = ("Z", "Y", "X")
        elif f.name == "anatomy_scale":
            kwargs["type"] = float
        elif isinstance(default, bool):
            kwargs["type"] = bool
        elif isinstance(default, (int, float, str)):
            kwargs["type"] = type(default)
        group.add_argument(_option(f.name), **kwargs)


def _load_yaml(path: str) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: config file not found")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{p}: not valid YAML ({err})") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping of synthetic options, got {type(doc).__name__}")
    return doc


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    """The SynthConfig of ``--config`` (if any) with the command-line options on top."""
    values = _load_yaml(args.config) if args.config else {}
    try:
        SynthConfig.from_dict(values)
    except ValueError as err:
        raise ValueError(f"{args.config}: {err}") from err
    for f in dataclasses.fields(SynthConfig):
        v = getattr(args, f"opt_{f.name}")
        if v is not None:
            values[f.name] = list(v) if isinstance(v, list) else v
    return SynthConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from s2cac.synth.cohort import generate_cohort

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    cfg = config_from_args(args)
    table = generate_cohort(args.out, cfg, n_jobs=args.threads, progress=not args.quiet)
    print(f"{Path(args.out) / 'cases.tsv'}: {len(table)} cases ({(table['negative'] == 'yes').sum()} negative)")
    return 0
