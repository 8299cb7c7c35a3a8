"""DICOM files shaped like MIMIC-CXR's: DX For Presentation, 16-bit words holding 12 bits.

Explicit VR little endian, uncompressed, with a file meta header; the tags the release and
its metadata table carry (dates shifted into 2100-2200, ViewPosition, the procedure, view
and patient-orientation code sequences, patient sex and age). A share is MONOCHROME1 (stored
inverted), some carry RescaleSlope/Intercept or WindowCenter/Width, as real files do.
"""

from __future__ import annotations

import os

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from cxrlib.mimic.layout import DX_FOR_PRESENTATION_SOP_CLASS
from cxrlib.mimic.synth.cohort import VIEW_CODE_MEANING, ImagePlan, StudyPlan, SubjectPlan

BITS_STORED = 12
_MAX = (1 << BITS_STORED) - 1
#: Fixed implementation UID of the writer (``2.25.`` + a constant 128-bit number).
IMPLEMENTATION_UID = "2.25.223585755403945467785208342411349062214"
_VIEW_CODES = {  # SNOMED-RT codes of the DX view context group
    "postero-anterior": "R-10214",
    "antero-posterior": "R-10206",
    "lateral": "R-10232",
    "left lateral": "R-10236",
    "left posterior oblique": "R-10246",
    "right anterior oblique": "R-10230",
    "right posterior oblique": "R-10252",
    "left anterior oblique": "R-10224",
}
_ORIENTATION_CODES = {"Erect": "F-10440", "Recumbent": "F-10450"}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def to_stored(image: np.ndarray, plan: ImagePlan, rng: np.random.Generator) -> np.ndarray:
    """Display image (0 black .. 1 white) to 12-bit stored values in uint16 words.

    The exposure range varies per image; MONOCHROME1 stores the inverse (0 = white).
    """
    low = int(rng.integers(0, 400))
    high = int(rng.integers(3300, _MAX + 1))
    stored = np.rint(low + image * (high - low)).astype(np.uint16)
    if plan.photometric == "MONOCHROME1":
        stored = (_MAX - stored).astype(np.uint16)
    return stored


def build_dataset(
    subject: SubjectPlan, study: StudyPlan, plan: ImagePlan, pixels: np.ndarray
) -> Dataset:
    """The full dataset (file meta included) of one image."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = plan.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CXRLIB_SYNTH_1"

    ds = Dataset()
    ds.file_meta = meta
    date = study.date.strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = DX_FOR_PRESENTATION_SOP_CLASS
    ds.SOPInstanceUID = plan.sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = study.time
    ds.AccessionNumber = ""
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.procedure
    ds.SeriesDescription = plan.view_position or "CHEST"
    ds.ProcedureCodeSequence = Sequence([_code("CXR", "SYNTH", study.procedure)])
    ds.PatientName = ""
    ds.PatientID = str(subject.subject_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = subject.gender
    ds.PatientAge = f"{study.age:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = plan.view_position
    ds.PerformedProcedureStepDescription = study.procedure
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = plan.series_uid
    ds.StudyID = str(study.study_id)
    ds.SeriesNumber = plan.number
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["A", "R"] if plan.view in ("LATERAL", "LL") else ["L", "F"]
    ds.BurnedInAnnotation = "NO"
    meaning = VIEW_CODE_MEANING.get(plan.view_position, "")
    ds.ViewCodeSequence = Sequence([_code(_VIEW_CODES[meaning], "SRT", meaning)] if meaning else [])
    ds.PatientOrientationCodeSequence = Sequence(
        [_code(_ORIENTATION_CODES[study.orientation], "SRT", study.orientation)]
        if study.orientation
        else []
    )
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = plan.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if plan.photometric == "MONOCHROME1" else 1
    slope, intercept = plan.rescale or (1.0, 0.0)
    if plan.rescale is not None:
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleType = "US"
    if plan.window:
        low, high = int(pixels.min()), int(pixels.max())
        ds.WindowCenter = f"{slope * (low + high) / 2 + intercept:.1f}"
        ds.WindowWidth = f"{max(slope * (high - low), 1.0):.1f}"
        ds.VOILUTFunction = "LINEAR"
    ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_dicom(path: str | os.PathLike[str], dataset: Dataset) -> None:
    """Write as a DICOM Part 10 file (preamble, ``DICM``, meta header, dataset)."""
    dataset.save_as(path, enforce_file_format=True)
