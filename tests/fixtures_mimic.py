"""Tiny hand-made MIMIC-CXR data roots and DICOM files for tests (built in tmp_path).

``write_root`` writes every released table (gzipped like the release, or plain), one small
DICOM per image and one report per study, from a short list of :class:`Study` records, so each
test states exactly the rows it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxrlib.atomic import write_csv
from cxrlib.mimic import layout

NORMAL_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough

 FINDINGS:

 PA and lateral views of the chest provided.  No focal consolidation.

 IMPRESSION:

 No acute intrathoracic process.
"""


def dicom_id(n: int) -> str:
    """A valid, distinct dicom_id for a small integer (``0000000n-aaaaaaaa-...``)."""
    return f"{n:08x}-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd"


@dataclass
class Study:
    """One study of a fixture root: its images (dicom_id, ViewPosition) and labels."""

    subject_id: int
    study_id: int
    images: list[tuple[str, str]]
    labels: dict[str, float] = field(default_factory=dict)
    date: int | None = 21800101
    time: float = 120000.0
    split: str = "train"
    report: str | None = NORMAL_REPORT
    has_label_row: bool = True


def write_root(
    root: Path,
    studies: list[Study],
    *,
    gz: bool = True,
    images: bool = True,
    suffix: str = ".dcm",
    patients: bool = True,
) -> Path:
    """Write a MIMIC-CXR-shaped data root under ``root`` and return it."""
    meta, records, splits, labels, study_list = [], [], [], [], []
    for st in studies:
        for did, view in st.images:
            rel = layout.image_path(st.subject_id, st.study_id, did, suffix).as_posix()
            # Rows in each table's released column order (no column spelled out here).
            meta.append(
                (
                    did,
                    st.subject_id,
                    st.study_id,
                    "CHEST (PA AND LAT)",
                    view,
                    8,
                    6,
                    st.date,
                    st.time,
                    "CHEST (PA AND LAT)",
                    "postero-anterior",
                    "Erect",
                )
            )
            dcm_path = layout.image_path(st.subject_id, st.study_id, did).as_posix()
            records.append((st.subject_id, st.study_id, did, dcm_path))
            splits.append((did, st.study_id, st.subject_id, st.split))
            if images:
                write_dicom(root / rel, np.full((8, 6), 100, dtype=np.uint16))
        if st.has_label_row:
            values = [st.labels.get(name, np.nan) for name in layout.CHEXPERT_LABELS]
            labels.append((st.subject_id, st.study_id, *values))
        report_rel = layout.report_path(st.subject_id, st.study_id)
        study_list.append((st.subject_id, st.study_id, report_rel.as_posix()))
        if st.report is not None:
            (root / report_rel).parent.mkdir(parents=True, exist_ok=True)
            (root / report_rel).write_text(st.report, encoding="utf-8")
    subjects = sorted({st.subject_id for st in studies})
    people = [(s, "F", 60, 2150, "2014 - 2016", "") for s in subjects]
    tables = [
        (layout.METADATA, meta),
        (layout.RECORD_LIST, records),
        (layout.SPLIT, splits),
        (layout.CHEXPERT, labels),
        (layout.NEGBIO, labels),
        (layout.STUDY_LIST, study_list),
    ]
    if patients:
        tables.append((layout.PATIENTS, people))
    for spec, rows in tables:
        name = spec.filename if gz else spec.plain_filename
        write_csv(root / name, pd.DataFrame(rows, columns=list(spec.columns)))
    return root


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    transfer_syntax: str | None = None,
    pixel_data: bool = True,
) -> Path:
    """Write a one-frame DX DICOM holding ``stored`` (uint8 or 16-bit values) to ``path``.

    ``rescale`` is (slope, intercept), ``window`` (center, width); ``transfer_syntax`` a
    compressed UID that pydicom can encode here (RLE Lossless, JPEG 2000 Lossless).
    """
    eight_bit = stored.dtype == np.uint8
    allocated = 8 if eight_bit else 16
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = layout.DX_FOR_PRESENTATION_SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.SOPClassUID = layout.DX_FOR_PRESENTATION_SOP_CLASS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = (int(n) for n in stored.shape)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = allocated
    ds.BitsStored = bits_stored or allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if pixel_data:
        dtype = np.uint8 if eight_bit else (np.int16 if signed else np.uint16)
        ds.PixelData = stored.astype(dtype).tobytes()
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
