"""Read and validate the released MIMIC-CXR tables; locate images and reports under a data root.

A table is found as ``X.csv.gz`` or plain ``X.csv`` (MIMIC-IV ``patients`` also under
``hosp/``), checked (columns, required values, id formats, label/split/view values, unique
keys) and typed (ids ``int64``, ``dicom_id``/``path`` strings, labels ``float64`` with NaN for
"not mentioned", other whole numbers nullable ``Int64``). Any problem is one ``ValueError``
naming the file, the column, the row and the value; never a pandas traceback.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.mimic import layout
from cxrlib.mimic.layout import TableSpec

_HOW_TO_GET = (
    "download it from PhysioNet (MIMIC-CXR 2.0.0 / MIMIC-CXR-JPG 2.1.0; patients from MIMIC-IV "
    "hosp) or create the synthetic look-alike with: python -m cxrlib.mimic.synth --out DIR"
)
#: Columns whose values identify a row: a repeated value means a damaged or concatenated file.
_UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    layout.RECORD_LIST.name: (layout.DICOM_ID,),
    layout.STUDY_LIST.name: (layout.STUDY_ID,),
    layout.METADATA.name: (layout.DICOM_ID,),
    layout.SPLIT.name: (layout.DICOM_ID,),
    layout.CHEXPERT.name: (layout.STUDY_ID,),
    layout.NEGBIO.name: (layout.STUDY_ID,),
    layout.PATIENTS.name: (layout.SUBJECT_ID,),
}
_LABEL_TABLES = (layout.CHEXPERT.name, layout.NEGBIO.name)
_LABEL_TEXT = "1.0, 0.0, -1.0 or empty"


def resolve_spec(spec_or_name: TableSpec | str) -> TableSpec:
    """A :class:`TableSpec` from itself or its name (``"metadata"``, ``"chexpert"``, ...)."""
    if isinstance(spec_or_name, TableSpec):
        return spec_or_name
    if spec_or_name in layout.TABLES:
        return layout.TABLES[spec_or_name]
    raise ValueError(f"unknown table {spec_or_name!r}; known tables: {sorted(layout.TABLES)}")


def table_candidates(data_root: str | os.PathLike[str], spec: TableSpec) -> list[Path]:
    """Every path where ``spec``'s file may lie, in the order they are tried."""
    root = Path(data_root)
    dirs = layout.PATIENTS_ALTERNATIVE_DIRS if spec is layout.PATIENTS else ("",)
    return [root / d / name for d in dirs for name in (spec.filename, spec.plain_filename)]


def find_table(data_root: str | os.PathLike[str], spec_or_name: TableSpec | str) -> Path:
    """The first existing file of a table, or ``FileNotFoundError`` naming every path tried."""
    spec = resolve_spec(spec_or_name)
    candidates = table_candidates(data_root, spec)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"table {spec.filename} not found (tried {tried}); {_HOW_TO_GET}")


def read_table(data_root: str | os.PathLike[str], spec_or_name: TableSpec | str) -> pd.DataFrame:
    """Read, validate and type one released table (columns in the released order)."""
    spec = resolve_spec(spec_or_name)
    path = find_table(data_root, spec)
    return validate_table(_read_raw(path), spec, path)


def _read_raw(path: Path) -> pd.DataFrame:
    """Every cell as text; a row longer than the header or a cut-off last line is an error.

    The header is read as data (``header=None``) so that pandas' C parser rejects any longer
    row instead of silently turning surplus fields into an index. It pads a short row, which
    in practice is the last line of a truncated download: :func:`_check_last_line` catches it
    (a truncated ``.gz`` already fails its own end-of-stream check).
    """
    try:
        cells = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except PermissionError as exc:
        raise PermissionError(
            f"cannot read {path}: permission denied; make the file readable for this user"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path} is empty (no header line); re-download it") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(
            f"{path} is not a well-formed CSV file ({exc}); the file is damaged - re-download it"
        ) from exc
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise ValueError(
            f"{path} is not a valid gzip file or is truncated ({exc}); re-download it"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc}); re-download it") from exc
    header = [str(c) for c in cells.iloc[0]]
    if len(cells) == 1:
        raise ValueError(
            f"{path} has a header but no rows; the file is incomplete - re-download it"
        )
    if path.suffix != ".gz":
        _check_last_line(path, len(header))
    body = cells.iloc[1:].reset_index(drop=True)
    body.columns = header
    return body


def _check_last_line(path: Path, width: int) -> None:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    fields = next(csv.reader(lines[-1:]), [])
    if lines and len(fields) != width:
        raise ValueError(
            f"{path} is not a well-formed CSV file: its last line has {len(fields)} fields where "
            f"the header has {width}; the file is truncated - re-download it"
        )


def validate_table(
    raw: pd.DataFrame, spec: TableSpec, path: str | os.PathLike[str]
) -> pd.DataFrame:
    """Check and type a table read as text; ``path`` is only used in messages."""
    _check_columns(raw, spec, path)
    frame = raw.loc[:, list(spec.columns)].reset_index(drop=True)
    for column in spec.required:
        _fail_first(frame[column] == "", path, column, frame[column], "must not be empty")
    typed: dict[str, pd.Series] = {}
    for column in spec.columns:
        typed[column] = _typed_column(frame[column], column, spec, path)
    result = pd.DataFrame(typed)
    for key in _UNIQUE_KEYS.get(spec.name, ()):
        repeated = result[key].duplicated(keep="first")
        _fail_first(repeated, path, key, frame[key], "repeats an earlier row (must be unique)")
    return result


def _check_columns(raw: pd.DataFrame, spec: TableSpec, path: str | os.PathLike[str]) -> None:
    found = [str(c) for c in raw.columns]
    missing = [c for c in spec.columns if c not in found]
    extra = [c for c in found if c not in spec.columns]
    repeated = sorted({c for c in found if found.count(c) > 1})
    if missing or extra or repeated:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        if repeated:
            parts.append(f"repeated columns {repeated}")
        raise ValueError(
            f"{path}: {'; '.join(parts)}. Expected exactly {list(spec.columns)} "
            f"(the {spec.filename} release schema)"
        )


def _fail_first(
    bad: pd.Series, path: str | os.PathLike[str], column: str, raw: pd.Series, problem: str
) -> None:
    if not bool(bad.any()):
        return
    row = int(np.flatnonzero(bad.to_numpy())[0])
    count = int(bad.sum())
    others = f" ({count - 1} more rows like it)" if count > 1 else ""
    raise ValueError(
        f"{path}: column '{column}' row {row + 1} (line {row + 2}) has value {raw.iloc[row]!r}, "
        f"which {problem}{others}; fix or re-download the file"
    )


def _typed_column(
    raw: pd.Series, column: str, spec: TableSpec, path: str | os.PathLike[str]
) -> pd.Series:
    if column in (layout.SUBJECT_ID, layout.STUDY_ID):
        is_subject = column == layout.SUBJECT_ID
        low, high = layout.SUBJECT_ID_RANGE if is_subject else layout.STUDY_ID_RANGE
        digits = raw.str.fullmatch(r"\d{8}")
        values = pd.to_numeric(raw.where(digits, "0")).astype("int64")
        bad = ~digits | (values < low) | (values > high)
        _fail_first(bad, path, column, raw, f"is not an 8-digit id in {low}-{high}")
        return values
    if column == layout.DICOM_ID:
        bad = ~raw.str.fullmatch(layout.DICOM_ID_PATTERN.pattern)
        _fail_first(bad, path, column, raw, "is not a dicom_id (five dash-joined 8-hex groups)")
        return raw.astype(str)
    if spec.name in _LABEL_TABLES and column in layout.CHEXPERT_LABELS:
        return _label_column(raw, column, path)
    if column == layout.SPLIT_COLUMN:
        _fail_first(~raw.isin(layout.SPLITS), path, column, raw, f"is not one of {layout.SPLITS}")
        return raw.astype(str)
    if column == layout.VIEW_POSITION:
        bad = ~(raw.isin(layout.VIEW_POSITIONS) | (raw == ""))
        _fail_first(bad, path, column, raw, f"is not empty or one of {layout.VIEW_POSITIONS}")
        return raw.astype(str)
    if column in layout.INTEGER_COLUMNS:
        values = pd.to_numeric(raw.where(raw != ""), errors="coerce")
        whole = values.notna() & (values == values.round())
        _fail_first(~(whole | (raw == "")), path, column, raw, "is not a whole number or empty")
        return values.astype("Int64")
    if column in layout.FLOAT_COLUMNS:
        values = pd.to_numeric(raw.where(raw != ""), errors="coerce")
        _fail_first(values.isna() & (raw != ""), path, column, raw, "is not a number or empty")
        return values.astype("float64")
    return raw.astype(str)


def _label_column(raw: pd.Series, column: str, path: str | os.PathLike[str]) -> pd.Series:
    values = pd.to_numeric(raw.where(raw != ""), errors="coerce").astype("float64")
    allowed = values.isin(sorted(layout.LABEL_VALUES))
    _fail_first(~(allowed | (raw == "")), path, column, raw, f"is not {_LABEL_TEXT}")
    if column == layout.NO_FINDING:
        bad = values.notna() & (values != layout.POSITIVE)
        _fail_first(bad, path, column, raw, "is not 1.0 or empty (No Finding is never 0 or -1)")
    return values


class MimicCxr:
    """One MIMIC-CXR data root (real or synthetic): its tables, images and reports.

    Tables are read once and kept. Paths given and returned are relative to the root in the
    released form (``files/p10/p10000032/s50414267/<dicom_id>.dcm``).
    """

    def __init__(self, data_root: str | os.PathLike[str]) -> None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"data root {root} is not a folder; pass the folder that holds "
                f"{layout.METADATA.filename} and files/ ({_HOW_TO_GET})"
            )
        self.root = root.resolve()
        self._tables: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"MimicCxr({str(self.root)!r})"

    def table(self, spec_or_name: TableSpec | str) -> pd.DataFrame:
        """A validated table (read on first use; callers get a copy they may modify)."""
        spec = resolve_spec(spec_or_name)
        if spec.name not in self._tables:
            self._tables[spec.name] = read_table(self.root, spec)
        return self._tables[spec.name].copy()

    def has_table(self, spec_or_name: TableSpec | str) -> bool:
        """Whether a table's file is present (it is not read)."""
        spec = resolve_spec(spec_or_name)
        return any(p.is_file() for p in table_candidates(self.root, spec))

    def find_image(self, subject_id: int, study_id: int, dicom_id: str) -> Path:
        """Absolute path of an image: the ``.dcm`` of MIMIC-CXR or the ``.jpg`` of MIMIC-CXR-JPG."""
        tried = []
        for suffix in layout.IMAGE_SUFFIXES:
            path = self.root / layout.image_path(subject_id, study_id, dicom_id, suffix)
            if path.is_file():
                return path
            tried.append(str(path))
        raise FileNotFoundError(
            f"image {dicom_id} of subject {subject_id}, study {study_id} not found "
            f"(tried {', '.join(tried)}); download the images of that study"
        )

    def image_relpath(self, subject_id: int, study_id: int, dicom_id: str) -> str:
        """``files/...`` path (POSIX, relative to the root) of the image file present."""
        return self.find_image(subject_id, study_id, dicom_id).relative_to(self.root).as_posix()

    def find_report(self, subject_id: int, study_id: int) -> Path:
        """Absolute path of a study's report under ``files/`` or ``mimic-cxr-reports/files/``."""
        relative = layout.report_path(subject_id, study_id)
        candidates = [self.root / base / relative for base in layout.REPORT_ROOTS]
        return _first_report(tuple(candidates))

    def read_report(self, subject_id: int, study_id: int) -> str:
        """The report text of a study (UTF-8)."""
        path = self.find_report(subject_id, study_id)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"report {path} is not UTF-8 text ({exc}); re-download it") from exc


def _first_report(candidates: tuple[Path, ...]) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"report not found (tried {', '.join(str(p) for p in candidates)}); reports come with "
        "MIMIC-CXR (mimic-cxr-reports.zip), not with MIMIC-CXR-JPG - unpack it into the data root"
    )
