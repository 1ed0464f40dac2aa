"""``s2cac train``: train an S2CAC (or baseline/ablation) model on an nnU-Net v2 preprocessed dataset."""

from __future__ import annotations

import argparse
import json


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preprocessed",
        required=True,
        metavar="DIR",
        help="nnU-Net preprocessed dataset folder (…/DatasetXXX_name with nnUNetPlans.json)",
    )
    parser.add_argument("--split", required=True, metavar="JSON", help="split file (labeled/unlabeled/negative/...)")
    parser.add_argument("--config", metavar="YAML", help="method config mapping (applied on top of --experiment)")
    parser.add_argument(
        "--experiment", metavar="NAME", help="experiment name under 'experiments:' of --experiments-file"
    )
    parser.add_argument("--experiments-file", metavar="YAML", help="the workflow's config.yaml")
    parser.add_argument("--fold", type=int, default=0, help="fold number (recorded; the split defines the data)")
    parser.add_argument("--output", required=True, metavar="MODEL_DIR", help="model folder (rerun to resume)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    import torch

    from s2cac.data.splits import read_split
    from s2cac.training.config import load_method_config
    from s2cac.training.run import resolve_device, train_model

    if args.config is None and args.experiment is None:
        raise ValueError("give --config and/or --experiment with --experiments-file")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    from s2cac.training.config_check import check_method_files

    check_method_files(args.config, args.experiment, args.experiments_file)  # schema errors naming file and key
    config = load_method_config(args.config, args.experiment, args.experiments_file)
    summary = train_model(
        args.preprocessed,
        read_split(args.split),
        config,
        args.output,
        fold=args.fold,
        device=resolve_device(args.device),
    )
    print(json.dumps(summary))
    return 0
