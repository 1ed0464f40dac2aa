"""Test data in COCA's real formats: DICOM series (reversed InstanceNumber order) and OsiriX plist ROIs."""

from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np

PIXEL_MM = 0.5
SLICE_MM = 3.0
ORIGIN_XYZ = (-8.0, -10.0, 100.0)  # position of the lowest slice's first pixel


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    *,
    pixel_mm: float = PIXEL_MM,
    slice_mm: float = SLICE_MM,
    origin_xyz: tuple[float, float, float] = ORIGIN_XYZ,
    skip: tuple[int, ...] = (),
) -> None:
    """Write ``hu`` (z, y, x; index 0 = lowest z) as one CT series; InstanceNumber 1 is the HIGHEST slice (as in
    the COCA release). Slices in ``skip`` are left out (a missing slice)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    nz, ny, nx = hu.shape
    for k in range(nz):
        if k in skip:
            continue
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.SeriesNumber = "CT", "anon", 1
        ds.InstanceNumber = nz - k  # reversed: instance 1 = top slice
        z = origin_xyz[2] + k * slice_mm
        ds.ImagePositionPatient = [origin_xyz[0], origin_xyz[1], z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"IM{nz - k:04d}.dcm", enforce_file_format=True)


def roi(name: str, points_xy, *, area_cm2: float, max_hu: float, z_mm: float | None = None) -> dict:
    """One OsiriX ROI as in COCA's XML (``Point_px`` strings "(x, y)")."""
    pts = [f"({x:.3f}, {y:.3f})" for x, y in points_xy]
    mm = [f"({x * PIXEL_MM:.3f}, {y * PIXEL_MM:.3f}, {z_mm:.3f})" for x, y in points_xy] if z_mm is not None else []
    return {
        "Name": name,
        "Area": area_cm2,
        "Max": max_hu,
        "Mean": max_hu - 50,
        "Min": 130.0,
        "Point_px": pts,
        "Point_mm": mm,
        "NumberOfPoints": len(pts),
    }


def write_calcium_xml(path: Path, images: dict[int, list[dict]]) -> None:
    """A COCA calcium XML: ``Images`` = [{ImageIndex, NumberOfROIs, ROIs}]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "Images": [{"ImageIndex": idx, "NumberOfROIs": len(rois), "ROIs": rois} for idx, rois in sorted(images.items())]
    }
    with open(path, "wb") as fh:
        plistlib.dump(data, fh, fmt=plistlib.FMT_XML)


def square(c0: int, c1: int, r0: int, r1: int) -> list[tuple[float, float]]:
    """Polygon around the pixel centres of columns c0..c1 and rows r0..r1 (inclusive), 0.4 px outside them."""
    return [(c0 - 0.4, r0 - 0.4), (c1 + 0.4, r0 - 0.4), (c1 + 0.4, r1 + 0.4), (c0 - 0.4, r1 + 0.4)]


def chest(shape=(6, 32, 32), seed: int = 0) -> np.ndarray:
    """Air around a soft-tissue body with a little noise (int16 HU)."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000, np.int16)
    hu[:, 3:-3, 3:-3] = 40
    hu += rng.integers(-10, 10, shape).astype(np.int16)
    return hu
