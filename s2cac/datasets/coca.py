"""The Stanford AIMI COCA dataset (Coronary Calcium and chest CTs): layout check and importers.

Gated part (per-artery calcium annotations)::

    <root>/Gated_release_final/patient/<id>/<series folder>/*.dcm     one 3 mm series per patient
    <root>/Gated_release_final/calcium_xml/<id>.xml                    OsiriX ROIs; no XML = a negative scan

The XML is an Apple plist: ``Images`` is a list of {``ImageIndex``, ``NumberOfROIs``, ``ROIs``}; every ROI has
``Name`` (the artery), ``Area`` (cm^2), ``Max``/``Mean``/``Min`` (HU), ``Point_px`` (strings ``"(x, y)"``,
x = column, y = row, fractional) and ``Point_mm``. ``ImageIndex`` counts the slices in ascending z
(ImagePositionPatient), the reverse of the release's InstanceNumber order. ROIs with an empty ``Point_px`` are
skipped and counted. Each polygon is filled with the even-odd rule at pixel centres; the filled pixels' peak HU
must equal the ROI's ``Max`` and their area must match ``Area`` (about 1 %): both are checked for every ROI and
mismatches are reported in the import log.

Non-gated part (scores only)::

    <root>/deidentified_nongated/<id>/<id>/*.dcm
    <root>/deidentified_nongated/scores.xlsx     columns "filename " (sic), LCA, LAD, LCX, RCA, total

imported as score-only cases: an image, no label map, the reference Agatston per artery and in total.
"""

from __future__ import annotations

import plistlib
import re
import sys
import xml.parsers.expat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2cac.datasets.common import (
    ARTERIES,
    DatasetImportError,
    cohort_writer,
    reference_scores,
    sanitize_case_id,
    unique_ids,
    write_summary,
)
from s2cac.datasets.polygons import fill_polygon
from s2cac.io.images import Geometry, read_ct

GATED = "Gated_release_final"
NONGATED = "deidentified_nongated"
#: ROI names of the COCA annotations -> label values (1 LM, 2 LAD, 3 LCX, 4 RCA).
ROI_LABELS = {
    "left coronary artery": 1,
    "left main": 1,
    "left anterior descending artery": 2,
    "left circumflex artery": 3,
    "right coronary artery": 4,
}
#: scores.xlsx column -> artery label.
SCORE_COLUMNS = {"LCA": 1, "LAD": 2, "LCX": 3, "RCA": 4}

FETCH_HELP = """\
COCA cannot be downloaded without your own credentials. To get it:
  1. Register at the Stanford AIMI shared-datasets portal (https://aimi.stanford.edu/shared-datasets), open
     "COCA - Coronary Calcium and chest CTs", accept its research use agreement and request the download.
  2. Either download it with the portal's instructions and unpack it so that these exist:
       {root}/{gated}/patient/<id>/<series folder>/*.dcm
       {root}/{gated}/calcium_xml/<id>.xml
       {root}/{nongated}/<id>/<id>/*.dcm and {root}/{nongated}/scores.xlsx   (for the non-gated part)
     or put the signed URL(s) of the archive(s) and their sha256 into dataset.download in your config
     (a signed URL is a secret: keep that config file private) and rerun; the workflow fetches, verifies and
     unpacks them into {root}.
"""


def fetch_help(root: str | Path) -> str:
    """What to fetch for COCA, from where, and where to put it under ``root``."""
    return FETCH_HELP.format(root=root, gated=GATED, nongated=NONGATED)


class CocaError(DatasetImportError):
    """The COCA files are missing, misplaced or unreadable; the message says which file and what to do."""


@dataclass(frozen=True)
class Roi:
    """One annotated polygon of a COCA calcium XML."""

    image_index: int
    name: str
    label: int
    points_px: np.ndarray  # (N, 2) x = column, y = row
    area_cm2: float | None
    max_hu: float | None
    z_mm: float | None


@dataclass
class CalciumXml:
    """The ROIs of one XML and the ROIs that were skipped (no ``Point_px``)."""

    path: Path
    rois: list[Roi]
    skipped_empty: int


_POINT = re.compile(r"^\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*(?:,\s*[-+0-9.eE]+\s*)?\)\s*$")


def _parse_point(text: object, path: Path, where: str) -> tuple[float, ...]:
    m = _POINT.match(str(text))
    if not m:
        raise CocaError(f"{path}: {where}: cannot parse point {text!r} (expected '(x, y)')")
    return float(m.group(1)), float(m.group(2))


def _number(roi: dict, key: str) -> float | None:
    value = roi.get(key)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def parse_calcium_xml(path: str | Path) -> CalciumXml:
    """Read one COCA calcium XML (an Apple plist).

    Raises:
        CocaError: the file does not parse, lacks ``Images``, or holds an unknown ROI name or a bad point.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = plistlib.load(fh)
    except (plistlib.InvalidFileException, xml.parsers.expat.ExpatError, ValueError, TypeError) as err:
        raise CocaError(f"{path}: not a readable plist XML ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("Images"), list):
        raise CocaError(f"{path}: no 'Images' list at the top level; not a COCA calcium annotation")
    rois, skipped = [], 0
    for i, image in enumerate(data["Images"]):
        if not isinstance(image, dict) or "ImageIndex" not in image:
            raise CocaError(f"{path}: Images[{i}] has no ImageIndex")
        index = int(image["ImageIndex"])
        for j, roi in enumerate(image.get("ROIs") or []):
            where = f"ImageIndex {index}, ROI {j}"
            name = str(roi.get("Name", "")).strip()
            label = ROI_LABELS.get(name.lower())
            if label is None:
                raise CocaError(f"{path}: {where}: unknown ROI name {name!r}; known: {sorted(ROI_LABELS)}")
            pts = roi.get("Point_px") or []
            if not pts:
                skipped += 1
                continue
            xy = np.array([_parse_point(p, path, where) for p in pts], dtype=float)
            z = None
            mm = roi.get("Point_mm") or []
            if mm:
                m = re.findall(r"[-+0-9.eE]+", str(mm[0]))
                z = float(m[2]) if len(m) >= 3 else None
            rois.append(Roi(index, name, label, xy, _number(roi, "Area"), _number(roi, "Max"), z))
    return CalciumXml(path, rois, skipped)


@dataclass
class RoiCheck:
    """The import-time check of one ROI against its own statistics."""

    case_id: str
    image_index: int
    name: str
    n_pixels: int
    area_cm2_ref: float | None
    area_cm2_fill: float
    max_hu_ref: float | None
    max_hu_fill: float | None
    problem: str  # "" when the ROI passed


def slice_of_index(geometry: Geometry) -> np.ndarray:
    """Array position (z) of each ImageIndex: ImageIndex k is the k-th slice in ascending patient z."""
    nz = geometry.size[0]
    dz = geometry.spacing_zyx[0]
    z = geometry.origin[2] + np.arange(nz) * dz * geometry.direction[8]
    return np.argsort(z, kind="stable")


def rasterise(
    xml: CalciumXml,
    hu: np.ndarray,
    geometry: Geometry,
    case_id: str,
    *,
    centre_offset: float = 0.0,
    area_rtol: float = 0.05,
) -> tuple[np.ndarray, list[RoiCheck]]:
    """Per-artery label map of one case from its ROIs, and the check of every ROI.

    Args:
        xml: the parsed annotation.
        hu: (z, y, x) CT in HU, in the array order of ``geometry``.
        geometry: the image geometry (maps ImageIndex to an array slice by ascending z).
        case_id: for the checks.
        centre_offset: see :func:`s2cac.datasets.polygons.fill_polygon`.
        area_rtol: a filled area differing from ``Area`` by more than this share (and more than one pixel)
            is reported.

    Raises:
        CocaError: an ImageIndex outside the series, or a polygon vertex outside the image.
    """
    nz, ny, nx = hu.shape
    dz, dy, dx = geometry.spacing_zyx
    order = slice_of_index(geometry)
    label = np.zeros(hu.shape, np.uint8)
    checks = []
    for roi in xml.rois:
        where = f"{xml.path}: ImageIndex {roi.image_index}, ROI {roi.name!r}"
        if not 0 <= roi.image_index < nz:
            raise CocaError(f"{where}: ImageIndex outside the series of {nz} slices (a missing slice?)")
        x, y = roi.points_px[:, 0], roi.points_px[:, 1]
        lo, hi = -0.5 + centre_offset, np.array([nx, ny]) - 0.5 + centre_offset
        if x.min() < lo or y.min() < lo or x.max() > hi[0] or y.max() > hi[1]:
            raise CocaError(
                f"{where}: polygon outside the image ({nx} x {ny} pixels): x {x.min():.1f}..{x.max():.1f}, "
                f"y {y.min():.1f}..{y.max():.1f}"
            )
        k = int(order[roi.image_index])
        mask = fill_polygon(roi.points_px, (ny, nx), centre_offset)
        n = int(mask.sum())
        area = n * dx * dy / 100.0
        peak = float(hu[k][mask].max()) if n else None
        problems = []
        if roi.z_mm is not None:
            z_slice = geometry.origin[2] + k * dz * geometry.direction[8]
            if abs(z_slice - roi.z_mm) > 0.25 * dz:
                problems.append(f"Point_mm z {roi.z_mm:.2f} but slice z {z_slice:.2f}")
        if n == 0:
            problems.append("the polygon covers no pixel centre")
        elif roi.max_hu is not None and round(peak) != round(roi.max_hu):
            problems.append(f"Max {roi.max_hu:g} HU but filled peak {peak:g} HU")
        if roi.area_cm2 is not None and n:
            diff = abs(area - roi.area_cm2)
            if diff > area_rtol * roi.area_cm2 and diff > dx * dy / 100.0:
                problems.append(f"Area {roi.area_cm2:.4f} cm^2 but filled {area:.4f} cm^2")
        label[k][mask] = roi.label
        checks.append(
            RoiCheck(case_id, roi.image_index, roi.name, n, roi.area_cm2, area, roi.max_hu, peak, "; ".join(problems))
        )
    return label, checks


# -- layout --------------------------------------------------------------------------------------------------


def _find(root: Path, name: str, marker: str) -> Path | None:
    """``root/name``, ``root`` itself, or ``root/<one folder>/name`` (an archive unpacked into its own folder)
    holding ``marker``; raises when several candidates do."""
    cands = [root / name, root]
    if root.is_dir():
        cands += [d / name for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    found = [c for c in cands if (c / marker).exists()]
    if len(found) > 1:
        raise CocaError(f"{root}: {name} found in several places ({', '.join(map(str, found))}); keep one")
    return found[0] if found else None


def find_gated(root: str | Path) -> Path:
    """The ``Gated_release_final`` folder under ``root`` (or ``root`` itself, or one level below it); raises with
    fetch instructions when there is none."""
    root = Path(root)
    found = _find(root, GATED, "patient")
    if found is None:
        raise CocaError(f"{root}: no {GATED}/patient folder.\n" + fetch_help(root))
    return found


def find_nongated(root: str | Path) -> Path:
    """The ``deidentified_nongated`` folder under ``root`` (or ``root`` itself, or one level below it)."""
    root = Path(root)
    found = _find(root, NONGATED, "scores.xlsx")
    if found is None:
        raise CocaError(f"{root}: no {NONGATED}/scores.xlsx.\n" + fetch_help(root))
    return found


def _series_folder(patient: Path) -> Path:
    """The one folder of ``patient`` holding DICOM files (the patient folder itself when it holds them)."""
    if any(f.suffix.lower() == ".dcm" for f in patient.iterdir() if f.is_file()):
        return patient
    subs = sorted(d for d in patient.iterdir() if d.is_dir() and not d.name.startswith("."))
    with_dcm = [d for d in subs if any(f.suffix.lower() == ".dcm" for f in d.iterdir() if f.is_file())]
    if not with_dcm and len(subs) == 1:
        return _series_folder(subs[0])
    if len(with_dcm) != 1:
        found = ", ".join(d.name for d in with_dcm) or "none"
        raise CocaError(f"{patient}: expected one DICOM series folder, found {len(with_dcm)} ({found})")
    return with_dcm[0]


def verify_layout(root: str | Path, part: str = "gated") -> dict:
    """Check that the COCA files were placed where the importer expects them; count them.

    Returns:
        Counts: ``patients``, ``annotations`` (XMLs), ``annotations_without_patient`` (gated), or ``patients`` and
        ``scores`` (non-gated).

    Raises:
        CocaError: missing folders or files, with instructions on what to fetch and where to put it.
    """
    if part == "gated":
        gated = find_gated(root)
        patients = sorted(d.name for d in (gated / "patient").iterdir() if d.is_dir())
        xml_dir = gated / "calcium_xml"
        if not xml_dir.is_dir():
            raise CocaError(f"{xml_dir}: missing (the annotations)\n" + fetch_help(root))
        xmls = sorted(p.stem for p in xml_dir.glob("*.xml"))
        if not patients:
            raise CocaError(f"{gated / 'patient'}: no patient folders")
        orphans = sorted(set(xmls) - set(patients))
        return {
            "part": "gated",
            "folder": str(gated),
            "patients": len(patients),
            "annotations": len(xmls),
            "annotations_without_patient": orphans,
        }
    if part == "nongated":
        folder = find_nongated(root)
        patients = sorted(d.name for d in folder.iterdir() if d.is_dir())
        return {"part": "nongated", "folder": str(folder), "patients": len(patients)}
    raise ValueError(f"COCA part must be gated or nongated, got {part!r}")


# -- importers -----------------------------------------------------------------------------------------------


def import_gated(
    root: str | Path,
    out_dir: str | Path,
    *,
    centre_offset: float = 0.0,
    area_rtol: float = 0.05,
    skip_bad_cases: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Import the gated COCA part into ``out_dir`` (images/, labels/, cases.tsv, import_log.txt,
    import_summary.json, roi_checks.tsv).

    Args:
        root: folder holding ``Gated_release_final`` (or that folder itself).
        out_dir: the cohort folder (``results/data/{dataset}`` in the workflow).
        centre_offset, area_rtol: see :func:`rasterise`.
        skip_bad_cases: leave out a case that fails (unreadable series, missing slice, bad XML, polygon outside
            the image) and report it, instead of stopping the import.
        limit: import only the first ``limit`` patients (sorted by id), e.g. for a quick trial.

    Returns:
        The summary (cases, negatives, ROIs used/skipped, mismatches, failed cases).

    Raises:
        CocaError: missing layout, or the first failing case (without ``skip_bad_cases``); nothing is written.
    """
    import pandas as pd

    from s2cac.atomic import atomic_write_text

    gated = find_gated(root)
    out_dir = Path(out_dir)
    xml_dir = gated / "calcium_xml"
    if not xml_dir.is_dir():  # without it every patient would silently become a negative
        raise CocaError(f"{xml_dir}: missing (the calcium annotations)\n" + fetch_help(root))
    patients = sorted((d for d in (gated / "patient").iterdir() if d.is_dir()), key=lambda d: d.name)
    if limit is not None:
        patients = patients[:limit]
    ids = {d.name: sanitize_case_id(d.name, f"{d}: ") for d in patients}
    unique_ids(ids, str(gated / "patient"))
    orphans = sorted({p.stem for p in xml_dir.glob("*.xml")} - {d.name for d in (gated / "patient").iterdir()})
    checks: list[RoiCheck] = []
    failed: list[str] = []
    n_neg = n_skipped = n_rois = 0
    with cohort_writer(out_dir) as writer:
        for i, patient in enumerate(patients, 1):
            cid = ids[patient.name]
            try:
                series = _series_folder(patient)
                try:
                    hu, geom = read_ct(series)
                except (ValueError, FileNotFoundError) as err:
                    raise CocaError(f"case {cid}: {err}") from err
                xml_path = xml_dir / f"{patient.name}.xml"
                if xml_path.is_file():
                    xml = parse_calcium_xml(xml_path)
                    label, case_checks = rasterise(xml, hu, geom, cid, centre_offset=centre_offset, area_rtol=area_rtol)
                    skipped = xml.skipped_empty
                else:
                    label, case_checks, skipped = np.zeros(hu.shape, np.uint8), [], 0
            except CocaError as err:
                if not skip_bad_cases:
                    raise
                failed.append(str(err))
                print(f"[coca] {i}/{len(patients)} {cid}: FAILED {err}", file=sys.stderr, flush=True)
                continue
            extra = reference_scores(hu, label, geom.spacing_zyx)
            extra.update(
                annotated="yes" if xml_path.is_file() else "no",
                n_rois=len(case_checks),
                rois_skipped=skipped,
                roi_mismatches=sum(1 for c in case_checks if c.problem),
                source=str(series),
            )
            if extra["annotated"] == "yes" and extra["negative"] == "yes":
                extra["negative"] = "no"  # annotated calcium that could not be drawn: not a negative scan
            writer.add(cid, hu, label, geom, extra)
            checks += case_checks
            n_neg += extra["negative"] == "yes"
            n_skipped += skipped
            n_rois += len(case_checks)
            if progress:
                print(
                    f"[coca] {i}/{len(patients)} {cid}: {hu.shape[0]} slices, {len(case_checks)} ROIs"
                    f" ({skipped} empty skipped), agatston {extra['agatston']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        table = pd.DataFrame([c.__dict__ for c in checks], columns=list(RoiCheck.__dataclass_fields__))
        bad = table[table["problem"] != ""]
        n_max = int(bad["problem"].str.contains("Max").sum())
        n_area = int(bad["problem"].str.contains("Area").sum())
        summary = {
            "cases": len(writer.rows),
            "negatives": n_neg,
            "rois_used": n_rois,
            "rois_skipped_empty": n_skipped,
            "roi_mismatches": len(bad),
            "max_hu_mismatches": n_max,
            "area_mismatches": n_area,
            "failed_cases": len(failed),
            "annotations_without_patient": len(orphans),
        }
        lines = [f"ROI mismatch {r.case_id} ImageIndex {r.image_index} {r.name}: {r.problem}" for r in bad.itertuples()]
        lines += [f"failed case: {m}" for m in failed]
        lines += [f"annotation without a patient folder: {o}.xml" for o in orphans]
        if n_rois >= 10 and n_max > n_rois / 2:
            lines.append(
                f"WARNING: {n_max} of {n_rois} ROIs fail the Max HU check: the pixel-centre convention may be wrong "
                f"(now {centre_offset:g}; try dataset.coca.pixel_centre: {0.5 if centre_offset == 0 else 0})"
            )
    atomic_write_text(out_dir / "roi_checks.tsv", table.to_csv(sep="\t", index=False, lineterminator="\n"))
    write_summary(out_dir, summary, lines)
    return summary


def import_nongated(
    root: str | Path,
    out_dir: str | Path,
    *,
    skip_bad_cases: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Import the non-gated COCA part as score-only cases (images, no label maps, reference Agatston).

    The case sheet gets an empty ``label``, ``agatston`` (the sheet's ``total``), ``agatston_<artery>``,
    ``risk_category`` and ``negative`` (total 0).

    Raises:
        CocaError: missing layout or sheet columns, a scores row without a series, or a failing case.
    """
    from s2cac.datasets.xlsx import read_xlsx
    from s2cac.scoring import risk_category

    folder = find_nongated(root)
    sheet_path = folder / "scores.xlsx"
    table = read_xlsx(sheet_path)
    table.columns = [str(c).strip() for c in table.columns]
    need = ["filename", *SCORE_COLUMNS, "total"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise CocaError(f"{sheet_path}: missing column(s) {missing}; found {list(table.columns)}")
    rows = table.to_dict("records")
    if limit is not None:
        rows = rows[:limit]
    failed: list[str] = []
    ids: dict[str, str] = {}
    for r in rows:
        name = _cell_text(r["filename"])
        ids[name] = sanitize_case_id(name, f"{sheet_path}, filename {name!r}: ")
    unique_ids(ids, str(sheet_path))
    n_neg = 0
    with cohort_writer(out_dir) as writer:
        for i, r in enumerate(rows, 1):
            name = _cell_text(r["filename"])
            cid = ids[name]
            try:
                patient = folder / name
                if not patient.is_dir():
                    raise CocaError(f"{sheet_path}: filename {name!r} has no series folder {patient}")
                scores = {}
                for col, lab in {**SCORE_COLUMNS, "total": 0}.items():
                    try:
                        scores[lab] = float(r[col])
                    except (TypeError, ValueError):
                        raise CocaError(f"{sheet_path}: {name}: column {col} is not a number: {r[col]!r}") from None
                try:
                    hu, geom = read_ct(_series_folder(patient))
                except (ValueError, FileNotFoundError) as err:
                    raise CocaError(f"case {cid}: {err}") from err
            except CocaError as err:
                if not skip_bad_cases:
                    raise
                failed.append(str(err))
                continue
            extra = {"agatston": scores[0]}
            extra.update({f"agatston_{ARTERIES[lab]}": scores[lab] for lab in SCORE_COLUMNS.values()})
            extra.update(risk_category=risk_category(scores[0]), negative="yes" if scores[0] == 0 else "no")
            extra["source"] = str(patient)
            writer.add(cid, hu, None, geom, extra)
            n_neg += scores[0] == 0
            if progress:
                print(f"[coca] {i}/{len(rows)} {cid}: {hu.shape[0]} slices, agatston {scores[0]:g}", file=sys.stderr)
        summary = {"cases": len(writer.rows), "negatives": n_neg, "failed_cases": len(failed)}
    write_summary(Path(out_dir), summary, [f"failed case: {m}" for m in failed])
    return summary


def _cell_text(value: object) -> str:
    """A spreadsheet cell as a name: numbers without a trailing ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
