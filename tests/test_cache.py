"""Preprocessing cache: pixel values, index, resume after interruption, rebuilds, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxrlib.images import shards
from cxrlib.images.cache import INDEX_COLUMNS, ImageCache, build_cache
from cxrlib.images.decode import resize_to_square
from cxrlib.images.shards import build_shard, finish_shards, shard_bounds

REALDATA = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "dicom"


# --- fixtures made here -------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    """8-bit grey PNG -> float32 [0, 1] (module level: worker processes must unpickle it)."""
    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


class CountingReader:
    """Records every path it decodes; raises after ``fail_after`` images to fake a crash."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.paths: list[str] = []

    def __call__(self, path: Path) -> np.ndarray:
        if self.fail_after is not None and len(self.paths) >= self.fail_after:
            raise RuntimeError("injected interruption")
        self.paths.append(Path(path).stem)
        return read_png(path)


def _png(root: Path, name: str, pixels: np.ndarray) -> str:
    (root / "files").mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(root / "files" / f"{name}.png")
    return f"files/{name}.png"


def _random_set(root: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` random grey PNGs of varying, non-square sizes; items frame dicom_id,path."""
    rng = np.random.default_rng(seed)
    ids = [f"img{i:03d}" for i in range(n)]
    paths = [
        _png(root, i, rng.integers(0, 256, (40 + 3 * k, 30 + 2 * k))) for k, i in enumerate(ids)
    ]
    return pd.DataFrame({"dicom_id": ids, "path": paths})


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


# --- round trip ---------------------------------------------------------------------------------
def test_round_trip_values_shape_and_index(data_root: Path, tmp_path: Path) -> None:
    half = np.zeros((64, 64))
    half[:, :32] = 255  # left half white
    tall = np.zeros((64, 32))
    tall[:32] = 255  # 2:1 portrait, top half white
    items = pd.DataFrame(
        {
            # unsorted and with a duplicate (the same image in two cohorts): cached once, sorted
            "dicom_id": ["c-tall", "a-grey", "b-half", "a-grey"],
            "path": [
                _png(data_root, "tall", tall),
                _png(data_root, "grey", np.full((40, 30), 51)),
                _png(data_root, "half", half),
                "files/grey.png",
            ],
        }
    )
    cache = build_cache(
        items, data_root, tmp_path / "cache", 16, workers=1, progress=False, reader=read_png
    )

    assert len(cache) == 3 and cache.image_size == 16
    assert cache.dicom_ids == ("a-grey", "b-half", "c-tall")
    assert cache.get("a-grey").dtype == np.uint8 and cache.get("a-grey").shape == (16, 16)
    assert (cache.get("a-grey") == 51).all()  # a constant image stays constant
    # 4x downscale, triangle filter of radius 4 source pixels: output column 7 is centred on
    # source x = 30 and sees 3.5 of its 4 weight units on white -> 0.875 * 255 = 223; column 8
    # sees 0.5 -> 32; the rest is pure.
    edge = [255] * 7 + [223, 32] + [0] * 7
    assert cache.get("b-half").tolist() == [edge] * 16
    # the whole portrait image is kept (stretched, not cropped): its top half is white
    assert cache.get("c-tall")[:, 0].tolist() == edge
    assert cache.stack(["c-tall", "a-grey"]).shape == (2, 16, 16)
    assert (cache.stack(["c-tall", "a-grey"])[1] == 51).all()
    assert cache.rows(["c-tall", "a-grey"]).tolist() == [2, 0]

    index = pd.read_csv(tmp_path / "cache" / "index.csv", dtype={"dicom_id": str})
    assert list(index.columns) == list(INDEX_COLUMNS)
    assert index.values.tolist() == [
        [0, "a-grey", "files/grey.png", 40, 30],
        [1, "b-half", "files/half.png", 64, 64],
        [2, "c-tall", "files/tall.png", 64, 32],
    ]
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["image_size"] == 16 and meta["count"] == 3 and meta["dtype"] == "uint8"
    assert meta["shape"] == [3, 16, 16] and "bilinear" in meta["resize"]
    assert (tmp_path / "cache" / "pixels.u8").stat().st_size == 3 * 16 * 16
    # only the finished files remain: no resume state
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "index.csv",
        "meta.json",
        "pixels.u8",
    ]
    reopened = ImageCache.open(tmp_path / "cache")
    assert (reopened.stack(cache.dicom_ids) == cache.stack(cache.dicom_ids)).all()


def test_two_workers_give_the_same_cache_as_one(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 20)
    one = build_cache(
        items, data_root, tmp_path / "w1", 24, workers=1, progress=False, reader=read_png
    )
    two = build_cache(
        items, data_root, tmp_path / "w2", 24, workers=2, progress=False, reader=read_png
    )
    assert np.array_equal(one.stack(one.dicom_ids), two.stack(one.dicom_ids))
    assert one.index.equals(two.index)
    expected = resize_to_square(read_png(data_root / items["path"][5]), 24)
    assert np.array_equal(two.get(items["dicom_id"][5]), expected)


def test_unknown_dicom_id_is_a_clear_key_error(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 3)
    cache = build_cache(
        items, data_root, tmp_path / "c", 16, workers=1, progress=False, reader=read_png
    )
    with pytest.raises(KeyError, match=r"1 dicom_id\(s\) not in the image cache .*'nope'"):
        cache.stack(["img000", "nope"])
    assert "img001" in cache and "nope" not in cache


def test_pickled_cache_carries_no_pixels(data_root: Path, tmp_path: Path) -> None:
    import pickle

    items = _random_set(data_root, 12)
    cache = build_cache(
        items, data_root, tmp_path / "c", 64, workers=1, progress=False, reader=read_png
    )
    _ = cache.pixels  # mapped
    blob = pickle.dumps(cache)
    assert len(blob) < 12 * 64 * 64  # the folder travels, not the 48 KiB of pixels
    assert np.array_equal(pickle.loads(blob).get("img004"), cache.get("img004"))


# --- resume, reuse, rebuild, atomicity ----------------------------------------------------------
def test_resume_decodes_only_missing_images(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 12)
    out = tmp_path / "cache"
    crashing = CountingReader(fail_after=7)
    with pytest.raises(RuntimeError, match="injected"):
        build_cache(items, data_root, out, 16, workers=1, progress=False, reader=crashing)
    # interrupted: no completion marker, and opening says how to finish
    assert not (out / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="unfinished"):
        ImageCache.open(out)
    done = np.fromfile(out / "done.u8", dtype=np.uint8).astype(bool)
    finished = set(np.asarray(sorted(items["dicom_id"]))[done])
    assert 0 < len(finished) <= 7  # whole chunks before the crash are kept

    resumed = CountingReader()
    cache = build_cache(items, data_root, out, 16, workers=1, progress=False, reader=resumed)
    assert sorted(resumed.paths) == sorted(set(items["dicom_id"]) - finished)
    fresh = build_cache(
        items, data_root, tmp_path / "fresh", 16, workers=1, progress=False, reader=read_png
    )
    assert np.array_equal(cache.stack(fresh.dicom_ids), fresh.stack(fresh.dicom_ids))
    assert cache.index.equals(fresh.index)


class LoggingReader:
    """Appends each decoded file's stem to a log (worker processes share it); fails on one file."""

    def __init__(self, log: Path, fail_on: str | None = None) -> None:
        self.log, self.fail_on = log, fail_on

    def __call__(self, path: Path) -> np.ndarray:
        if Path(path).stem == self.fail_on:
            raise RuntimeError("injected interruption")
        with open(self.log, "a") as handle:
            handle.write(Path(path).stem + "\n")
        return read_png(path)

    def decoded(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


def test_resume_with_worker_processes(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 24)
    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="injected"):
        build_cache(
            items, data_root, out, 16, workers=2, progress=False,
            reader=LoggingReader(tmp_path / "first.log", fail_on="img013"),
        )  # fmt: skip
    done = np.fromfile(out / "done.u8", dtype=np.uint8).astype(bool)
    finished = set(np.asarray(sorted(items["dicom_id"]))[done])
    assert 0 < len(finished) < 24 and "img013" not in finished
    second = LoggingReader(tmp_path / "second.log")
    cache = build_cache(items, data_root, out, 16, workers=2, progress=False, reader=second)
    assert sorted(second.decoded()) == sorted(set(items["dicom_id"]) - finished)
    expected = np.stack([resize_to_square(read_png(data_root / p), 16) for p in items["path"]])
    assert np.array_equal(cache.stack(items["dicom_id"]), expected)


def test_complete_cache_is_reused_without_decoding(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 6)
    build_cache(
        items, data_root, tmp_path / "c", 16, workers=1, progress=False, reader=CountingReader()
    )
    again = CountingReader()
    # a different row order and duplicates describe the same item list
    shuffled = pd.concat([items, items]).iloc[::-1]
    cache = build_cache(
        shuffled, data_root, tmp_path / "c", 16, workers=1, progress=False, reader=again
    )
    assert again.paths == [] and len(cache) == 6


@pytest.mark.parametrize(
    ("change", "expected_size", "expected_count"),
    [
        ("image_size", 8, 6),  # a new size rebuilds everything
        ("items", 16, 5),  # a changed item list rebuilds everything
    ],
)
def test_changed_size_or_items_rebuild(
    data_root: Path, tmp_path: Path, change: str, expected_size: int, expected_count: int
) -> None:
    items = _random_set(data_root, 6)
    out = tmp_path / "c"
    build_cache(items, data_root, out, 16, workers=1, progress=False, reader=read_png)
    new_items = items.iloc[:5] if change == "items" else items
    counting = CountingReader()
    cache = build_cache(
        new_items, data_root, out, expected_size, workers=1, progress=False, reader=counting
    )
    assert len(counting.paths) == expected_count
    assert (cache.image_size, len(cache)) == (expected_size, expected_count)
    assert (out / "pixels.u8").stat().st_size == expected_count * expected_size**2


def test_interrupted_rebuild_leaves_no_completion_marker(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 6)
    out = tmp_path / "c"
    build_cache(items, data_root, out, 16, workers=1, progress=False, reader=read_png)
    with pytest.raises(RuntimeError, match="injected"):
        build_cache(items, data_root, out, 8, workers=1, progress=False, reader=CountingReader(2))
    assert not (out / "meta.json").exists()  # the old 16-px cache is no longer claimed complete
    with pytest.raises(FileNotFoundError, match="unfinished"):
        ImageCache.open(out)


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_image_names_the_file(data_root: Path, tmp_path: Path, workers: int) -> None:
    items = _random_set(data_root, 8)
    (data_root / "files" / "img005.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"cannot read image .*img005\.png \(dicom_id img005\)"):
        build_cache(
            items, data_root, tmp_path / "c", 16, workers=workers, progress=False, reader=read_png
        )
    assert not (tmp_path / "c" / "meta.json").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_image_names_the_file(data_root: Path, tmp_path: Path, workers: int) -> None:
    items = _random_set(data_root, 8)
    (data_root / "files" / "img002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"dicom_id img002 not found: .*img002\.png"):
        build_cache(
            items, data_root, tmp_path / "c", 16, workers=workers, progress=False, reader=read_png
        )


def _as_uint8(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _as_rgb(path: Path) -> np.ndarray:
    return np.stack([read_png(path)] * 3, axis=-1)


def _as_0_255(path: Path) -> np.ndarray:
    return read_png(path) * 255


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        (_as_uint8, r"dtype uint8 .*expected a 2-D float array"),
        (_as_rgb, r"shape \(40, 30, 3\) .*expected a 2-D float array"),
        (_as_0_255, r"values in \[.*\] for .*img000\.png; expected \[0, 1\]"),
    ],
)
def test_reader_breaking_its_contract_is_named(
    data_root: Path, tmp_path: Path, reader: object, message: str
) -> None:
    items = _random_set(data_root, 1)
    with pytest.raises(ValueError, match=message):
        build_cache(items, data_root, tmp_path / "c", 16, workers=1, progress=False, reader=reader)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image_size": 0}, ValueError, r"image_size must be an integer in \[8, 4096\].*got 0"),
        ({"image_size": "224"}, ValueError, r"image_size .* got '224'"),
        ({"workers": 0}, ValueError, "workers must be an integer >= 1, got 0"),
        ({"items": pd.DataFrame({"dicom_id": ["a"]})}, ValueError, r"lack column\(s\) \['path'\]"),
        ({"items": pd.DataFrame(columns=["dicom_id", "path"])}, ValueError, "items is empty"),
        (
            {"items": pd.DataFrame({"dicom_id": ["a", "a"], "path": ["x.png", "y.png"]})},
            ValueError,
            r"dicom_id a is listed with different paths \['x.png', 'y.png'\]",
        ),
        ({"data_root": "missing"}, FileNotFoundError, "is not a folder"),
        ({"out_dir": "data/cache"}, ValueError, "inside the data root"),
        ({"reader": lambda p: read_png(p), "workers": 2}, ValueError, "cannot be sent to worker"),
    ],
)
def test_argument_errors(
    data_root: Path, tmp_path: Path, kwargs: dict, error: type, message: str
) -> None:
    args = {
        "items": _random_set(data_root, 2),
        "data_root": data_root,
        "out_dir": tmp_path / "c",
        "image_size": 16,
        "workers": 1,
        "reader": read_png,
    }
    for key in ("data_root", "out_dir"):
        if isinstance(kwargs.get(key), str):
            kwargs = {**kwargs, key: tmp_path / kwargs[key]}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        build_cache(progress=False, **args)


def test_open_without_a_cache_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no image cache at .*build it with"):
        ImageCache.open(tmp_path)


def test_damaged_pixels_file_is_detected(data_root: Path, tmp_path: Path) -> None:
    build_cache(
        _random_set(data_root, 3),
        data_root,
        tmp_path / "c",
        16,
        workers=1,
        progress=False,
        reader=read_png,
    )
    with open(tmp_path / "c" / "pixels.u8", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"holds 769 bytes, expected 768 .*damaged"):
        ImageCache.open(tmp_path / "c")


# --- DICOM input -------------------------------------------------------------------------------
def _write_dicom(path: Path, pixels: np.ndarray) -> None:
    """A 12-bit-in-16 MONOCHROME2 DX file, Explicit VR little endian (what MIMIC ships)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def read_dicom_12bit(path: Path) -> np.ndarray:
    """Test-only reader for the files above (the project's reader is cxrlib.mimic.dicom)."""
    return pydicom.dcmread(path).pixel_array.astype(np.float32) / 4095.0


def test_dicom_files_round_trip(data_root: Path, tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 4095, 48), (40, 1)).round()
    _write_dicom(data_root / "files" / "d1.dcm", ramp)
    _write_dicom(data_root / "files" / "d2.dcm", np.full((40, 48), 819))  # 819 / 4095 = 0.2
    items = pd.DataFrame({"dicom_id": ["d1", "d2"], "path": ["files/d1.dcm", "files/d2.dcm"]})
    cache = build_cache(
        items, data_root, tmp_path / "c", 12, workers=2, progress=False, reader=read_dicom_12bit
    )
    assert (cache.get("d2") == 51).all()
    row = cache.get("d1")[0].astype(int)
    assert row[0] < 15 and row[-1] > 240 and (np.diff(row) > 0).all()  # a left-to-right ramp
    assert cache.index[["source_rows", "source_cols"]].values.tolist() == [[40, 48], [40, 48]]


def test_default_reader_on_real_dicoms(tmp_path: Path) -> None:
    pytest.importorskip("cxrlib.mimic.dicom", reason="the project's DICOM reader is not available")
    if not REALDATA.is_dir():
        pytest.skip(f"real sample DICOMs not present at {REALDATA}")
    names = sorted(p.name for p in REALDATA.glob("*.dcm"))
    items = pd.DataFrame({"dicom_id": [Path(n).stem for n in names], "path": names})
    cache = build_cache(items, REALDATA, tmp_path / "c", 32, workers=1, progress=False)
    assert len(cache) == len(names) and cache.meta["reader"].endswith("read_image")
    nih = cache.index.set_index("dicom_id").loc["nih_00000001_000_google"]
    assert (nih["source_rows"], nih["source_cols"]) == (1024, 1024)
    assert all(cache.get(i).std() > 10 for i in cache.dicom_ids)  # real content, not blank


# --- sharded builds ------------------------------------------------------------------------------
def test_sharded_build_equals_the_single_process_build_byte_for_byte(
    data_root: Path, tmp_path: Path
) -> None:
    items = _random_set(data_root, 11)
    single = tmp_path / "single"
    reader = CountingReader()  # one reader (meta.json names it) for every build below
    build_cache(items, data_root, single, 20, workers=1, progress=False, reader=reader)
    out = tmp_path / "sharded"
    # four builders; shard 2 is interrupted once
    for shard in (0, 1, 3):
        build_shard(items, data_root, out, 20, shard, 4, workers=1, progress=False, reader=reader)
    with pytest.raises(FileNotFoundError, match=r"shard\(s\) 2/4 \(missing\); build them"):
        finish_shards(items, data_root, out, 20, 4, reader=reader)
    failing = CountingReader(fail_after=1)
    with pytest.raises(RuntimeError, match="injected"):
        build_shard(items, data_root, out, 20, 2, 4, workers=1, progress=False, reader=failing)
    with pytest.raises(FileNotFoundError, match=r"shard\(s\) 2/4 \(unfinished\)"):
        finish_shards(items, data_root, out, 20, 4, reader=reader)
    counting = CountingReader()  # resumes: decodes only what the interrupted build had not
    build_shard(items, data_root, out, 20, 2, 4, workers=1, progress=False, reader=counting)
    low, high = shard_bounds(11, 2, 4)
    assert (low, high) == (5, 8) and len(counting.paths) == high - low - 1
    cache = finish_shards(items, data_root, out, 20, 4, reader=reader)
    for name in ("pixels.u8", "index.csv", "meta.json"):
        assert (out / name).read_bytes() == (single / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "meta.json", "pixels.u8"]
    assert len(cache) == 11
    # a shard of another build (other size) is refused by name
    other = tmp_path / "other"
    for shard in range(2):
        size = 20 if shard == 0 else 16
        build_shard(items, data_root, other, size, shard, 2, workers=1, progress=False,
                    reader=read_png)  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"1/2 \(built from other items, size"):
        finish_shards(items, data_root, other, 20, 2, reader=read_png)


def test_shards_command_line(data_root: Path, tmp_path: Path) -> None:
    items = _random_set(data_root, 5)
    items_csv = tmp_path / "items.csv"
    items.to_csv(items_csv, index=False)
    common = ["--items", str(items_csv), "--data-root", str(data_root), "--out",
              str(tmp_path / "c"), "--image-size", "12"]  # fmt: skip
    for shard in ("0/2", "1/2"):
        assert shards.main(["build", *common, "--shard", shard, "--workers", "1"]) == 0
    assert shards.main(["finish", *common, "--shards", "2"]) == 0
    assert len(ImageCache.open(tmp_path / "c")) == 5
    with pytest.raises(ValueError, match="--shard must be i/N, e.g. 0/8, got '2'"):
        shards.main(["build", *common, "--shard", "2"])
    with pytest.raises(ValueError, match=r"shard must be an integer in \[0, 1\], got 2"):
        shards.main(["build", *common, "--shard", "2/2"])
