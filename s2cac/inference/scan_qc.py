"""Scan QC: checks that say when a score should not be trusted. They warn; they never change a score.

Each check yields a flag ``name(detail)``; ``s2cac predict`` writes them, ``;``-separated, to the ``qc_flags``
column of ``scores.csv``, to its log line and onto the QC picture (see docs/inference.md):

===========================  =========================================================================================
``synthetic_model``           the model was trained only on synthetic scans and this scan is not one of them
``training_data_unknown``     the model records nothing about its training data, so nothing below can be checked
``spacing_out_of_range``      in-plane pixel spacing outside the training data's range (+-:data:`RANGE_TOL`)
``fov_out_of_range``          in-plane field of view outside the training data's range (+-:data:`RANGE_TOL`)
``contrast_enhanced``         the blood pool is far above non-contrast values (a CTA? Agatston needs non-contrast)
``kvp_not_120``               DICOM tube voltage (0018,0060) is not 120 kVp (the 130 HU rule assumes 120 kVp)
``slice_increment_not_3mm``   slice spacing differs from 3 mm (the score is rescaled, but not validated)
``slice_thickness_not_3mm``   DICOM slice thickness (0018,0050) differs from 3 mm
===========================  =========================================================================================

A model's training data is described by dataset.json's ``s2cac_training_data`` (written by
``s2cac nnunet-raw``; see :func:`describe_training_data`), which a model folder and package carry along.
Synthetic scans written by ``s2cac synth`` carry :data:`SYNTHETIC_MARK` in their NIfTI description.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SYNTHETIC_MARK = "s2cac synthetic"
#: relative tolerance around the training data's spacing and field-of-view range
RANGE_TOL = 0.1
#: |slice increment or thickness - 3 mm| above this is flagged, mm
SLICE_TOL_MM = 0.25
#: blood pool: HU range of contrast-enhanced blood, and the share of the central tissue above which we flag
CONTRAST_HU = (180.0, 800.0)
CONTRAST_FRACTION = 0.15


@dataclass(frozen=True)
class ScanInfo:
    """What the checks need to know about a scan besides its voxels.

    Attributes:
        spacing_zyx: voxel spacing (z, y, x), mm (z = slice increment).
        shape_zyx: array shape.
        kvp: DICOM tube voltage, None when unknown (NIfTI etc.).
        slice_thickness_mm: DICOM slice thickness, None when unknown.
        synthetic: the image carries :data:`SYNTHETIC_MARK` (written by ``s2cac synth``).
    """

    spacing_zyx: tuple[float, float, float]
    shape_zyx: tuple[int, int, int]
    kvp: float | None = None
    slice_thickness_mm: float | None = None
    synthetic: bool = False

    @property
    def fov_mm(self) -> float:
        """Largest in-plane field of view, mm."""
        return float(max(self.shape_zyx[1] * self.spacing_zyx[1], self.shape_zyx[2] * self.spacing_zyx[2]))


def _float(text: str | None) -> float | None:
    try:
        return float(str(text).split("\\")[0])
    except (TypeError, ValueError):
        return None


def read_scan_info(path: str | Path, spacing_zyx: Sequence[float], shape_zyx: Sequence[int]) -> ScanInfo:
    """Header facts of the scan at ``path`` (a file, or a DICOM series folder: its first file's header).

    Only headers are read (``ReadImageInformation``). Unreadable tags are None.
    """
    import SimpleITK as sitk

    path = Path(path)
    first: Path | None = path
    if path.is_dir():
        from s2cac.io.images import pick_dicom_series

        try:  # the series read_image reads (not a localizer beside it)
            files = pick_dicom_series(path)[0].files
        except ValueError:
            files = ()
        first = Path(files[0]) if files else None
    tags: dict[str, str] = {}
    if first is not None:
        try:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(first))
            reader.ReadImageInformation()
            tags = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}
        except RuntimeError:
            tags = {}
    descr = " ".join(tags.get(k, "") for k in ("descrip", "ITK_FileNotes"))
    return ScanInfo(
        spacing_zyx=tuple(float(s) for s in spacing_zyx),  # type: ignore[arg-type]
        shape_zyx=tuple(int(s) for s in shape_zyx),  # type: ignore[arg-type]
        kvp=_float(tags.get("0018|0060")),
        slice_thickness_mm=_float(tags.get("0018|0050")),
        synthetic=SYNTHETIC_MARK in descr,
    )


def contrast_fraction(hu: np.ndarray) -> float:
    """Share of the central tissue (HU > -200) in the blood-pool-with-contrast range :data:`CONTRAST_HU`.

    The central half of the image in y and x and of the slices holds the heart and aortic root in a cardiac
    field of view (and, in non-contrast scans, blood and myocardium at 30-60 HU); the spine and most ribs lie
    outside it. Contrast-filled chambers and aorta (250-500 HU) fill a large share of it; calcium a tiny one.
    """
    z, y, x = hu.shape
    box = hu[z // 4 : z - z // 4 or z, y // 4 : y - y // 4, x // 4 : x - x // 4]
    tissue = box > -200
    n = int(tissue.sum())
    if n == 0:
        return 0.0
    lo, hi = CONTRAST_HU
    return float(((box >= lo) & (box <= hi)).sum() / n)


def describe_training_data(
    dataset: str, kind: str, spacings_zyx: Sequence[Sequence[float]], shapes_zyx: Sequence[Sequence[int]],
    *, kvps: Sequence[float] = (), n_labeled: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """dataset.json's ``s2cac_training_data``: what a model was trained on (see :func:`check_scan`).

    Args:
        dataset: dataset name.
        kind: ``synthetic``, ``real`` or ``unknown``.
        spacings_zyx: spacing of every training scan, mm.
        shapes_zyx: shape of every training scan.
        kvps: tube voltages when known.
        n_labeled: labeled training cases (default: the number of scans).
    """
    if kind not in ("synthetic", "real", "unknown"):
        raise ValueError(f"training data kind must be synthetic, real or unknown, got {kind!r}")
    from s2cac import __version__

    sp = np.asarray(spacings_zyx, dtype=float).reshape(-1, 3)
    sh = np.asarray(shapes_zyx, dtype=float).reshape(-1, 3)
    fov = np.maximum(sh[:, 1] * sp[:, 1], sh[:, 2] * sp[:, 2]) if len(sp) else np.zeros(0)
    inplane = np.concatenate([sp[:, 1], sp[:, 2]]) if len(sp) else np.zeros(0)

    def rng(a: np.ndarray) -> list[float] | None:
        return [round(float(a.min()), 4), round(float(a.max()), 4)] if len(a) else None

    return {
        "dataset": dataset,
        "kind": kind,
        "n_scans": int(len(sp)),
        "n_labeled": int(len(sp) if n_labeled is None else n_labeled),
        "spacing_xy_mm": rng(inplane),
        "spacing_z_mm": rng(sp[:, 0]) if len(sp) else None,
        "fov_mm": rng(fov),
        "kvp": sorted({float(k) for k in kvps}) or None,
        "s2cac_version": __version__,
    }


def _outside(value: float, bounds: Sequence[float] | None) -> bool:
    if not bounds:
        return False
    lo, hi = float(bounds[0]), float(bounds[1])
    return value < lo * (1 - RANGE_TOL) or value > hi * (1 + RANGE_TOL)


def check_scan(hu: np.ndarray, info: ScanInfo, training: dict[str, Any] | None) -> list[str]:
    """QC flags of one scan (see the module docstring); empty when nothing is suspicious.

    Args:
        hu: (z, y, x) CT in HU.
        info: header facts (:func:`read_scan_info`).
        training: the model's ``s2cac_training_data`` (None = unknown).
    """
    flags: list[str] = []
    if not training:
        flags.append("training_data_unknown(the model does not record its training data)")
    else:
        if training.get("kind") == "synthetic" and not info.synthetic:
            flags.append(f"synthetic_model(trained only on synthetic scans: {training.get('dataset')})")
        sxy = max(info.spacing_zyx[1], info.spacing_zyx[2])
        bounds = training.get("spacing_xy_mm")
        if _outside(sxy, bounds):
            flags.append(f"spacing_out_of_range({sxy:.3g} mm; trained on {bounds[0]:.3g}-{bounds[1]:.3g} mm)")
        bounds = training.get("fov_mm")
        if _outside(info.fov_mm, bounds):
            flags.append(f"fov_out_of_range({info.fov_mm:.0f} mm; trained on {bounds[0]:.0f}-{bounds[1]:.0f} mm)")
    frac = contrast_fraction(hu)
    if frac > CONTRAST_FRACTION:
        lo, hi = CONTRAST_HU
        flags.append(f"contrast_enhanced({frac:.0%} of central tissue at {lo:.0f}-{hi:.0f} HU)")
    if info.kvp is not None and abs(info.kvp - 120.0) > 0.5:
        flags.append(f"kvp_not_120({info.kvp:g} kVp)")
    if abs(info.spacing_zyx[0] - 3.0) > SLICE_TOL_MM:
        flags.append(f"slice_increment_not_3mm({info.spacing_zyx[0]:.3g} mm)")
    if info.slice_thickness_mm is not None and abs(info.slice_thickness_mm - 3.0) > SLICE_TOL_MM:
        flags.append(f"slice_thickness_not_3mm({info.slice_thickness_mm:.3g} mm)")
    return flags


def flag_names(flags: Sequence[str]) -> list[str]:
    """The names of flags, without their details."""
    return [f.split("(", 1)[0] for f in flags]
