"""Write an nnU-Net v2 raw dataset from a case sheet, with the method's HU window applied beforehand.

nnU-Net's ``CT`` normalisation clips to percentiles of the *labelled* voxels; with calcium-only labels that
is >= 130 HU and erases all anatomy. We therefore window the HU images ourselves (:mod:`s2cac.hu`: level 130,
width 850, i.e. [-295, 555] HU mapped linearly to [0, 255]) and store them as uint8, and declare the channel
as ``rgb_to_0_1`` so that nnU-Net only divides by 255. Labels become binary (calcium = any label > 0), or
keep the four arteries with ``label_mode="arteries"``. The original HU images stay where they are, for Agatston scoring.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from s2cac.atomic import atomic_dir, atomic_write_json
from s2cac.data.cases import CaseSheetError, check_case, load_case_sheet
from s2cac.hu import DATASET_JSON_KEY, EXTRA_DATASET_JSON_KEY, HUWindow, window_hu
from s2cac.inference.scan_qc import SYNTHETIC_MARK, describe_training_data
from s2cac.nnunet import CHANNEL_SCHEME


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetXXX_name`` (3-digit id)."""
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"nnU-Net dataset id must be 1..999, got {dataset_id}")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"dataset name {name!r} must be letters, digits, '_' or '-'")
    return f"Dataset{int(dataset_id):03d}_{name}"


#: nnU-Net labels per label mode: binary calcium (the paper's), or the four coronary arteries (values 1-4 as in
#: the synthetic cohort and COCA: LM, LAD, LCX, RCA; any other non-zero value is refused in that mode).
LABELS = {
    "binary": {"background": 0, "calcium": 1},
    "arteries": {"background": 0, "LM": 1, "LAD": 2, "LCX": 3, "RCA": 4},
}


def _convert_case(
    row,
    images_dir: Path,
    labels_dir: Path,
    window: HUWindow,
    label_mode: str = "binary",
    extra_windows: tuple[HUWindow, ...] = (),
) -> tuple[str, dict]:
    import SimpleITK as sitk

    from s2cac.io.images import Geometry, write_image

    check_case(row)  # readable, 3D, label on the image grid, non-negative integer labels
    cid = row["case_id"]
    img = sitk.ReadImage(row["image"])
    hu = sitk.GetArrayFromImage(img)
    if not np.issubdtype(hu.dtype, np.integer) and not np.all(np.mod(hu, 1) == 0):
        raise CaseSheetError(f"case {cid}: image {row['image']} is not integer HU (dtype {hu.dtype})")
    if hu.max() <= 255 and hu.min() >= 0:
        raise CaseSheetError(
            f"case {cid}: image {row['image']} ranges {hu.min()}..{hu.max()}: that is not CT in HU "
            "(air is about -1000 HU); convert it to HU first"
        )
    geometry = Geometry.from_sitk(img)
    for channel, w in enumerate((window, *extra_windows)):  # nnU-Net's channel files _0000, _0001, ...
        write_image(window_hu(hu, w), geometry, images_dir / f"{cid}_{channel:04d}.nii.gz")
    lab = sitk.ReadImage(row["label"])
    values = sitk.GetArrayViewFromImage(lab)
    if label_mode == "arteries":
        if values.max(initial=0) > 4:
            raise CaseSheetError(f"case {cid}: label {row['label']} has values > 4; artery labels are 1-4")
        labels = np.asarray(values, dtype=np.uint8)
    else:
        labels = (values > 0).astype(np.uint8)
    # the label grid was checked to match within tolerance; write it on the image's grid exactly
    write_image(labels, geometry, labels_dir / f"{cid}.nii.gz")
    notes = " ".join(img.GetMetaData(k) for k in ("descrip", "ITK_FileNotes") if img.HasMetaDataKey(k))
    sx, sy, sz = img.GetSpacing()
    facts = {"spacing_zyx": (sz, sy, sx), "shape_zyx": hu.shape, "synthetic": SYNTHETIC_MARK in notes}
    return cid, facts


def write_raw_dataset(
    case_sheet: str | Path,
    raw_root: str | Path,
    dataset_id: int,
    dataset_name: str,
    *,
    window: HUWindow = HUWindow(),
    threads: int = 1,
    progress: bool = True,
    data_kind: str | None = None,
    label_mode: str = "binary",
    extra_windows: tuple[HUWindow, ...] | list[HUWindow] = (),
) -> Path:
    """Convert every case of a case sheet into ``raw_root/DatasetXXX_name`` (imagesTr, labelsTr, dataset.json).

    The folder is written atomically: it appears complete or not at all. dataset.json records what the data
    is (``s2cac_training_data``: kind, spacing and field-of-view range, case count); a model trained on it
    carries that along, and ``s2cac predict`` warns about scans outside it (:mod:`s2cac.inference.scan_qc`).
    ``data_kind`` (``synthetic``, ``real``, ``unknown``) defaults to ``synthetic`` when every image carries
    the mark ``s2cac synth`` writes, else ``unknown``. ``label_mode`` ``binary`` (calcium = any label > 0) or
    ``arteries`` (labels 1-4 kept as LM, LAD, LCX, RCA; see :data:`LABELS`). ``extra_windows`` adds one input
    channel per window (``_0001``, ...; recorded as ``s2cac_extra_hu_windows``); channel 0 is always ``window``.

    Returns:
        The dataset folder.
    """
    if label_mode not in LABELS:
        raise ValueError(f"label_mode must be one of {sorted(LABELS)}, got {label_mode!r}")
    sheet = load_case_sheet(case_sheet)
    final = Path(raw_root) / dataset_folder_name(dataset_id, dataset_name)
    with atomic_dir(final) as tmp:
        images, labels = tmp / "imagesTr", tmp / "labelsTr"
        images.mkdir()
        labels.mkdir()
        rows = [row for _, row in sheet.iterrows()]
        facts = []
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            extra = tuple(extra_windows)
            convert = lambda r: _convert_case(r, images, labels, window, label_mode, extra)  # noqa: E731
            for i, (cid, f) in enumerate(pool.map(convert, rows), 1):
                facts.append(f)
                if progress:
                    print(f"[nnunet-raw] {i}/{len(rows)} {cid}", file=sys.stderr, flush=True)
        if data_kind is None:
            data_kind = "synthetic" if facts and all(f["synthetic"] for f in facts) else "unknown"
        training = describe_training_data(
            dataset_name, data_kind, [f["spacing_zyx"] for f in facts], [f["shape_zyx"] for f in facts]
        )
        windows = (window, *extra_windows)
        shown = ", ".join(f"[{w.bounds[0]:g}, {w.bounds[1]:g}]" for w in windows)
        info = {
            "name": dataset_name,
            "description": f"CAC segmentation; images HU-windowed {shown} -> 0..255 by s2cac",
            "channel_names": {str(c): CHANNEL_SCHEME for c in range(len(windows))},
            "labels": LABELS[label_mode],
            "numTraining": len(rows),
            "file_ending": ".nii.gz",
            DATASET_JSON_KEY: {"level": window.level, "width": window.width},
            "s2cac_training_data": training,
        }
        if extra_windows:
            info[EXTRA_DATASET_JSON_KEY] = [{"level": w.level, "width": w.width} for w in extra_windows]
        atomic_write_json(tmp / "dataset.json", info)
    return final
