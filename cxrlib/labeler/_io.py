"""Reading the CSV files the labeler's command-line tools are given, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """Every cell of a CSV as text, unchanged (no "NA" -> NaN conversion).

    Raises ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` or ``ValueError``
    with one line naming the file and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input CSV not found: {path} (give an existing CSV file)")
    if path.is_dir():
        raise IsADirectoryError(f"input {path} is a folder; give a CSV file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except PermissionError:
        raise PermissionError(
            f"cannot read {path}: permission denied (check the file's permissions)"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as CSV: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def require_column(frame: pd.DataFrame, path: str | Path, column: str) -> None:
    """Raise ``ValueError`` naming the file and its columns when ``column`` is absent."""
    if column not in frame.columns:
        raise ValueError(
            f"{path} has no column {column!r}; its columns are {list(frame.columns)}"
            " (pass the report text column with --text-column)"
        )
