"""Inference on users' scans: model loading/packaging, nnU-Net sliding-window prediction, scores and QC.

Public API (imported lazily, so ``import s2cac.inference`` stays light):

- :func:`load_model` / :func:`export_model` / :class:`ModelError` (``model_io``)
- :func:`make_predictor` / :func:`predict_network_mask` (``predictor``)
- :func:`predict_path` / :func:`predict_cases` / :class:`PredictOptions` / :class:`CaseResult` /
  :class:`CaseInput` / :func:`find_cases` (``batch``)
- :func:`import_original_checkpoint` (``import_weights``)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_model": "model_io",
    "export_model": "model_io",
    "write_package": "model_io",
    "write_model_folder": "model_io",
    "LoadedModel": "model_io",
    "ModelError": "model_io",
    "make_predictor": "predictor",
    "predict_network_mask": "predictor",
    "predict_path": "batch",
    "predict_case": "batch",
    "predict_cases": "batch",
    "CaseInput": "batch",
    "find_cases": "batch",
    "PredictOptions": "batch",
    "CaseResult": "batch",
    "import_original_checkpoint": "import_weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"s2cac.inference.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 's2cac.inference' has no attribute {name!r}")
