"""Preprocessing cache: every image decoded and resized once, then read as compact uint8 arrays.

Decoding a full-size radiograph (~3000 x 2500, 16-bit DICOM) costs tens of milliseconds; a CNN
epoch at 64-224 px needs a fraction of that per image. So stage 01 decodes every image once
into a folder that later stages memory-map:

``pixels.u8``
    raw uint8 array ``(count, image_size, image_size)``; row ``i`` is row ``i`` of ``index.csv``.
``index.csv``
    ``row,dicom_id,path,source_rows,source_cols`` (``path`` relative to the data root, source size
    of the decoded image before resizing), sorted by ``dicom_id``.
``meta.json``
    image size, count, dtype, resize method, reader, fingerprint of the item list, format
    version. Written atomically and LAST: a folder without it is an unfinished build.

Resize choice: the whole image is stretched to the square (no crop, no letterbox padding), as
the paper resized to 224 x 224. MIMIC radiographs are close to square (3056 x 2544 is 1.2:1), so
the distortion is mild, no pixel is spent on padding, and horizontal ratios such as the
cardiothoracic ratio are unchanged because both widths are scaled alike. Resampling is Pillow's
antialiased bilinear filter on the float image (mode ``F``): a single-threaded C routine that is
safe in forked worker processes (unlike torch's OpenMP kernels), needs no torch import in
workers, and gives the same values as torchvision's ``resize(..., antialias=True)`` on tensors
(checked to 2e-6). Quantisation is ``round(255 * x)`` after resizing.

Building: chunks of images go to worker processes, which decode, resize and write their rows
straight into the shared ``pixels.u8`` memmap (no pixels cross a pipe; bench/preprocess.py
measures this against returning arrays). While unfinished the folder also holds ``build.json``
(what is being built), ``done.u8`` (one byte per row) and ``shapes.i32``; the parent checkpoints
them every few seconds and on any interruption, after an msync of the pixels, so a re-run
decodes only the rows not yet done. Another item list, image size, reader or data root starts
over; ``meta.json`` is removed first, so the folder never claims a cache it does not hold.

Failures: an unreadable or missing image stops the build with one error naming the file. It is
not skipped, because a silently shrunken cohort would change the study; the work done so far is
kept, so removing or fixing the file and re-running resumes where the build stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrlib.atomic import write_bytes, write_csv, write_json
from cxrlib.choices import IMAGE_SIZE_RANGE
from cxrlib.images.decode import (
    RESIZE_METHOD,
    Reader,
    decode_chunk,
    default_reader,
    reader_name,
)

#: Bumped whenever the files' layout or the pixel recipe changes; older caches are rebuilt.
FORMAT_VERSION = 1
PIXELS_FILE, INDEX_FILE, META_FILE = "pixels.u8", "index.csv", "meta.json"
INDEX_COLUMNS = ("row", "dicom_id", "path", "source_rows", "source_cols")
#: Resume state, present only while a build is unfinished.
_STATE_FILE, _DONE_FILE, _SHAPES_FILE = "build.json", "done.u8", "shapes.i32"
#: Keys of meta.json that must match for an existing cache (or unfinished build) to be reused.
_SPEC_KEYS = (
    "format_version",
    "image_size",
    "count",
    "resize",
    "reader",
    "items_sha256",
    "data_root",
)
_MIN_SIZE, _MAX_SIZE = IMAGE_SIZE_RANGE
_MAX_CHUNK = 32
#: Workers write their pixels into the shared memmap (True) or return them to the parent, which
#: writes them (False). Measured side by side by bench/preprocess.py; kept switchable for it.
_WRITE_IN_WORKER = True
#: Seconds between checkpoints of the done-mask (each one msyncs the pixels first).
_CHECKPOINT_SECONDS = 5.0


# --- item list ----------------------------------------------------------------------------------
def _normalise_items(items: pd.DataFrame) -> pd.DataFrame:
    """Validate ``items``; one row per dicom_id, sorted (so the cache ignores input order)."""
    if not isinstance(items, pd.DataFrame):
        raise ValueError(
            f"items must be a pandas DataFrame with columns dicom_id, path; got {type(items)}"
        )
    missing = [c for c in ("dicom_id", "path") if c not in items.columns]
    if missing:
        raise ValueError(
            f"items lack column(s) {missing}; expected at least ['dicom_id', 'path'], "
            f"got {list(items.columns)}"
        )
    frame = items[["dicom_id", "path"]].astype(str)
    if frame.empty:
        raise ValueError("items is empty: nothing to cache; check the cohort or report sample set")
    blank = frame[(frame["dicom_id"].str.strip() == "") | (frame["path"].str.strip() == "")]
    if not blank.empty:
        raise ValueError(f"items have an empty dicom_id or path in row(s) {list(blank.index[:5])}")
    frame = frame.drop_duplicates()
    clash = frame[frame["dicom_id"].duplicated(keep=False)]
    if not clash.empty:
        first = clash["dicom_id"].iloc[0]
        paths = list(clash.loc[clash["dicom_id"] == first, "path"])
        raise ValueError(
            f"dicom_id {first} is listed with different paths {paths}; one image per id"
        )
    return frame.sort_values("dicom_id", kind="stable").reset_index(drop=True)


def _items_sha256(frame: pd.DataFrame) -> str:
    lines = (frame["dicom_id"] + "\t" + frame["path"]).str.cat(sep="\n")
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _check_args(data_root: Path, out_dir: Path, image_size: int, workers: int) -> None:
    if not isinstance(image_size, int | np.integer) or not _MIN_SIZE <= image_size <= _MAX_SIZE:
        raise ValueError(
            f"image_size must be an integer in [{_MIN_SIZE}, {_MAX_SIZE}] (224 in the paper), "
            f"got {image_size!r}"
        )
    if not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not data_root.is_dir():
        raise FileNotFoundError(
            f"data root {data_root} is not a folder; pass the MIMIC-CXR root (or generate a "
            "synthetic one with python -m cxrlib.mimic.synth)"
        )
    if out_dir == data_root or data_root in out_dir.parents:
        raise ValueError(
            f"out_dir {out_dir} is inside the data root {data_root}, which is read-only; "
            "write the cache into the run folder"
        )


# --- build ------------------------------------------------------------------------------------
def build_cache(
    items: pd.DataFrame,
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    image_size: int,
    *,
    workers: int = 2,
    progress: bool = True,
    reader: Reader | None = None,
) -> ImageCache:
    """Decode every image of ``items`` (columns ``dicom_id``, ``path``) into a cache at ``out_dir``.

    Returns the opened cache. A complete cache built from the same items, size, reader and
    data root is reused as is; an unfinished one resumes, decoding only the missing images; any
    other content of ``out_dir`` written by an earlier build is replaced. Duplicated rows
    (the same image in several cohorts) are cached once. ``reader(path)`` must return float32
    (H, W) in [0, 1]; it defaults to ``cxrlib.mimic.dicom.read_image`` and must be picklable (a
    module-level function) when ``workers > 1``.
    """
    root = Path(data_root).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    _check_args(root, out, image_size, workers)
    image_size = int(image_size)
    frame = _normalise_items(items)
    reader = reader if reader is not None else default_reader()
    if workers > 1:
        try:
            pickle.dumps(reader)
        except Exception as exc:
            raise ValueError(
                f"reader {reader_name(reader)} cannot be sent to worker processes ({exc}); "
                "use a module-level function, or workers=1"
            ) from exc
    spec = {
        "format_version": FORMAT_VERSION,
        "image_size": image_size,
        "count": len(frame),
        "resize": RESIZE_METHOD,
        "reader": reader_name(reader),
        "items_sha256": _items_sha256(frame),
        "data_root": str(root),
    }
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / META_FILE
    if meta_path.is_file():
        if _same_spec(_read_json(meta_path), spec):
            _remove(out, (_STATE_FILE, _DONE_FILE, _SHAPES_FILE))
            return ImageCache.open(out)
        meta_path.unlink()  # from here on the folder is an unfinished build
    done, shapes = _prepare_state(out, spec)
    _fill(frame, root, out, spec, done, shapes, reader, workers=int(workers), progress=progress)
    index = frame.assign(
        row=np.arange(len(frame)), source_rows=shapes[:, 0], source_cols=shapes[:, 1]
    )
    write_csv(out / INDEX_FILE, index[list(INDEX_COLUMNS)])
    size = image_size
    write_json(meta_path, {**spec, "dtype": "uint8", "shape": [len(frame), size, size]})
    _remove(out, (_STATE_FILE, _DONE_FILE, _SHAPES_FILE))
    return ImageCache.open(out)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"cannot read {path} ({exc}); delete the cache folder and rebuild"
        ) from exc


def _same_spec(recorded: dict[str, Any], spec: dict[str, Any]) -> bool:
    return all(recorded.get(key) == spec[key] for key in _SPEC_KEYS)


def _remove(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)


def _prepare_state(out: Path, spec: dict[str, Any]) -> tuple[np.memmap, np.memmap]:
    """Open the resume state of an unfinished build with ``spec``, or start a fresh one."""
    n, size = spec["count"], spec["image_size"]
    paths = {name: out / name for name in (PIXELS_FILE, _DONE_FILE, _SHAPES_FILE)}
    expected = {PIXELS_FILE: n * size * size, _DONE_FILE: n, _SHAPES_FILE: n * 2 * 4}
    state = out / _STATE_FILE
    resumable = (
        state.is_file()
        and _same_spec(_read_json(state), spec)
        and all(p.is_file() and p.stat().st_size == expected[k] for k, p in paths.items())
    )
    if not resumable:
        # Unlink rather than truncate: a reader that still maps an old pixels.u8 keeps its data.
        _remove(out, (_STATE_FILE, PIXELS_FILE, _DONE_FILE, _SHAPES_FILE, INDEX_FILE))
        np.memmap(paths[PIXELS_FILE], dtype=np.uint8, mode="w+", shape=(n, size, size)).flush()
        write_bytes(paths[_DONE_FILE], bytes(n))
        write_bytes(paths[_SHAPES_FILE], bytes(n * 2 * 4))
        write_json(state, spec)  # last: a build.json promises that the state files exist
    done = np.fromfile(paths[_DONE_FILE], dtype=np.uint8)
    shapes = np.fromfile(paths[_SHAPES_FILE], dtype=np.int32).reshape(n, 2)
    return done, shapes


def _checkpoint(out: Path, pixels: np.memmap, done: np.ndarray, shapes: np.ndarray) -> None:
    """Make finished rows durable, pixels first, so done.u8 never claims rows whose pixels
    a system crash could still lose (done.u8 and shapes.i32 are replaced atomically)."""
    pixels.flush()
    write_bytes(out / _SHAPES_FILE, shapes.tobytes())
    write_bytes(out / _DONE_FILE, done.tobytes())


def _chunk_size(todo: int, workers: int) -> int:
    """About eight chunks per worker: even load, frequent progress and done-mask updates."""
    return max(1, min(_MAX_CHUNK, math.ceil(todo / (workers * 8))))


def _fill(
    frame: pd.DataFrame,
    root: Path,
    out: Path,
    spec: dict[str, Any],
    done: np.ndarray,
    shapes: np.ndarray,
    reader: Reader,
    *,
    workers: int,
    progress: bool,
) -> None:
    """Decode every row not yet marked done, in chunks; checkpoint the done-mask every few
    seconds and on the way out (interruption included), so a re-run redoes only the rest."""
    size = spec["image_size"]
    todo = np.flatnonzero(np.asarray(done) == 0)
    step = _chunk_size(len(todo), workers)
    base = {
        "image_size": size,
        "reader": reader,
        "data_root": str(root),
        "pixels_path": str(out / PIXELS_FILE),
        "shape": (len(frame), size, size),
        "write": _WRITE_IN_WORKER,
    }
    paths, ids = frame["path"].to_numpy(), frame["dicom_id"].to_numpy()
    tasks = [
        {**base, "rows": rows, "paths": list(paths[rows]), "dicom_ids": list(ids[rows])}
        for rows in (todo[i : i + step] for i in range(0, len(todo), step))
    ]
    pixels = np.memmap(base["pixels_path"], dtype=np.uint8, mode="r+", shape=base["shape"])
    bar = tqdm(
        total=len(frame),
        initial=len(frame) - len(todo),
        desc="image cache",
        unit="img",
        disable=not progress,
    )
    last_checkpoint = time.monotonic()

    def record(result: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> None:
        nonlocal last_checkpoint
        rows, chunk_shapes, arrays = result
        if arrays is not None:
            pixels[rows] = arrays
        shapes[rows] = chunk_shapes
        done[rows] = 1
        bar.update(len(rows))
        if time.monotonic() - last_checkpoint > _CHECKPOINT_SECONDS:
            _checkpoint(out, pixels, done, shapes)
            last_checkpoint = time.monotonic()

    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                record(decode_chunk(task))
        else:
            _run_pool(tasks, workers, record)
    finally:
        bar.close()
        _checkpoint(out, pixels, done, shapes)


def _run_pool(tasks: list[dict[str, Any]], workers: int, record: Callable[[Any], None]) -> None:
    """Chunks in worker processes; the first failure cancels the chunks not yet started."""
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        pending = {pool.submit(decode_chunk, task) for task in tasks}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                failed = [f for f in finished if f.exception() is not None]
                for future in finished:
                    if future.exception() is None:
                        record(future.result())
                if failed:
                    raise failed[0].exception()
        finally:
            running = [future for future in pending if not future.cancel()]
            for future in wait(running).done:  # they finish anyway: keep their work
                if future.exception() is None:
                    record(future.result())


# --- reading --------------------------------------------------------------------------------------
class ImageCache:
    """A finished preprocessing cache opened read-only: uint8 (image_size, image_size) per dicom_id.

    Pixels are memory-mapped, so opening is instant and many processes share the page cache.
    Use :meth:`open`; build with :func:`build_cache`.
    """

    def __init__(self, root: Path, meta: dict[str, Any], index: pd.DataFrame) -> None:
        self.root = root
        self.meta = meta
        self.index = index
        self.image_size = int(meta["image_size"])
        self.dicom_ids: tuple[str, ...] = tuple(index["dicom_id"])
        self._lookup = pd.Index(index["dicom_id"])
        self._pixels: np.memmap | None = None

    @classmethod
    def open(cls, out_dir: str | os.PathLike[str]) -> ImageCache:
        """Open the cache at ``out_dir``; errors say whether it is missing, unfinished or stale."""
        root = Path(out_dir).expanduser().resolve()
        meta_path = root / META_FILE
        if not meta_path.is_file():
            if (root / _STATE_FILE).is_file():
                raise FileNotFoundError(
                    f"image cache at {root} is unfinished (no {META_FILE}; the build was "
                    "interrupted): run build_cache again with the same arguments to resume it"
                )
            raise FileNotFoundError(
                f"no image cache at {root} ({META_FILE} missing): build it with "
                "cxrlib.images.build_cache (stage 01_preprocessing)"
            )
        meta = _read_json(meta_path)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"image cache at {root} has format_version {meta.get('format_version')!r}, this "
                f"code reads {FORMAT_VERSION}: rebuild it with build_cache"
            )
        index = pd.read_csv(root / INDEX_FILE, dtype={"dicom_id": str, "path": str})
        n, size = int(meta["count"]), int(meta["image_size"])
        if list(index.columns) != list(INDEX_COLUMNS) or len(index) != n:
            raise ValueError(
                f"{root / INDEX_FILE} does not match {META_FILE} (columns {list(index.columns)}, "
                f"{len(index)} rows, expected {list(INDEX_COLUMNS)} and {n}): rebuild the cache"
            )
        found = (root / PIXELS_FILE).stat().st_size if (root / PIXELS_FILE).is_file() else None
        if found != n * size * size:
            raise ValueError(
                f"{root / PIXELS_FILE} holds {found} bytes, expected {n * size * size} "
                f"({n} x {size} x {size}): the cache is damaged; delete {root} and rebuild"
            )
        return cls(root, meta, index)

    @property
    def pixels(self) -> np.memmap:
        """The read-only memmap (count, S, S), row order of :attr:`index`; mapped on first use."""
        if self._pixels is None:
            shape = (len(self), self.image_size, self.image_size)
            self._pixels = np.memmap(self.root / PIXELS_FILE, dtype=np.uint8, mode="r", shape=shape)
        return self._pixels

    def __len__(self) -> int:
        return len(self.dicom_ids)

    def __contains__(self, dicom_id: object) -> bool:
        return dicom_id in self._lookup

    def __repr__(self) -> str:
        return f"ImageCache({str(self.root)!r}, images={len(self)}, image_size={self.image_size})"

    def __getstate__(self) -> dict[str, Any]:
        # Pickle the folder, not the mapping (np.memmap would pickle every pixel).
        return {**self.__dict__, "_pixels": None}

    def rows(self, dicom_ids: Sequence[str] | pd.Series | np.ndarray) -> np.ndarray:
        """Row numbers (int64) of ``dicom_ids`` in :attr:`pixels`; unknown ids raise KeyError."""
        if isinstance(dicom_ids, str):
            dicom_ids = [dicom_ids]
        wanted = pd.Index(np.asarray(dicom_ids, dtype=object))
        rows = self._lookup.get_indexer(wanted)
        if (rows < 0).any():
            absent = list(wanted[rows < 0][:5])
            raise KeyError(
                f"{int((rows < 0).sum())} dicom_id(s) not in the image cache at {self.root} "
                f"({len(self)} images), e.g. {absent}; rebuild the cache from the same cohort"
            )
        return rows.astype(np.int64)

    def get(self, dicom_id: str) -> np.ndarray:
        """One image, uint8 (image_size, image_size), 0 = black, 255 = white (bright bones)."""
        return np.array(self.pixels[self.rows([dicom_id])[0]])

    def stack(self, dicom_ids: Sequence[str] | pd.Series | np.ndarray) -> np.ndarray:
        """Images of ``dicom_ids`` in that order, uint8 (N, image_size, image_size)."""
        return np.asarray(self.pixels[self.rows(dicom_ids)])
