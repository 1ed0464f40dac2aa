"""The entry point of training: :func:`create_trainer` builds the trainer class of a method config.

The classes: :class:`~s2cac.training.base.BaseTrainer` (shared machinery, a subclass of nnU-Net v2's
``nnUNetTrainer``, nnunetv2 == 2.8.1) and the methods of :mod:`s2cac.training.methods`, re-exported here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from nnunetv2.utilities.helpers import empty_cache

from s2cac.envtools import temporary_environ
from s2cac.nnunet import CONFIGURATION, PLANS_IDENTIFIER
from s2cac.training.base import BaseTrainer
from s2cac.training.config import MethodConfig
from s2cac.training.methods import (
    TRAINERS,
    MeanTeacherTrainer,
    S2CACTrainer,
    SemiSupervisedTrainer,
    SupervisedTrainer,
    UAMTTrainer,
    trainer_class,
)

__all__ = [
    "TRAINERS",
    "BaseTrainer",
    "MeanTeacherTrainer",
    "S2CACTrainer",
    "SemiSupervisedTrainer",
    "SupervisedTrainer",
    "UAMTTrainer",
    "create_trainer",
    "trainer_class",
]


def create_trainer(
    preprocessed_dataset: str | Path,
    split: dict,
    config: MethodConfig,
    output_dir: str | Path,
    fold: int = 0,
    device: str | torch.device = "cpu",
) -> BaseTrainer:
    """Build the trainer of ``config``'s method (:func:`trainer_class`) for one preprocessed dataset, split and
    model folder.

    The plans' ``3d_fullres`` patch size is replaced by ``config.patch_size`` when given (the model folder's
    plans.json then holds the size used), and the batch size by the labeled patches per iteration.
    nnU-Net's folder environment variables are set only while nnU-Net's constructor runs.
    """
    from batchgenerators.utilities.file_and_folder_operations import load_json

    pre = Path(preprocessed_dataset).resolve()
    out = Path(output_dir).resolve()
    plans_file = pre / f"{PLANS_IDENTIFIER}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(f"{pre}: no {plans_file.name}; is this a preprocessed nnU-Net dataset folder?")
    plans, dataset_json = load_json(str(plans_file)), load_json(str(pre / "dataset.json"))
    if CONFIGURATION not in plans["configurations"]:
        raise ValueError(f"{pre}: the plans have no {CONFIGURATION!r} configuration")
    conf = plans["configurations"][CONFIGURATION]
    if config.patch_size is not None:
        conf["patch_size"] = [int(p) for p in config.patch_size]
    conf["batch_size"] = config.n_labeled
    plans["continue_training"] = (out / "checkpoint_latest.pth").is_file()
    out.mkdir(parents=True, exist_ok=True)
    cls = trainer_class(config)
    with (
        tempfile.TemporaryDirectory(prefix="s2cac-nnunet-") as scratch,
        temporary_environ(nnUNet_preprocessed=pre.parent, nnUNet_results=scratch),
    ):
        trainer = cls(plans, CONFIGURATION, fold, dataset_json, torch.device(device))
    trainer.preprocessed_dataset_folder_base = str(pre)
    trainer.preprocessed_dataset_folder = str(pre / trainer.configuration_manager.data_identifier)
    trainer.setup_method(config, split, out)
    empty_cache(trainer.device)
    return trainer
