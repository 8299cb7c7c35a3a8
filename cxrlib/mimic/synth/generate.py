"""Write a synthetic MIMIC-CXR release: plan, render, write, then rename into place.

Everything is written into a temporary folder beside the target and renamed at the end,
with a marker file written last, so an interrupted generation leaves nothing half-written
and a complete one is recognised (and reused) by its marker.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cxrlib.choices import SYNTHETIC_SIZE_RANGE
from cxrlib.mimic import layout
from cxrlib.mimic.synth import cohort, dicom_writer, labels, phantom, reports, tables
from cxrlib.paths import cache_dir
from cxrlib.progress import progress_bar

#: Bump when the output of the same arguments changes, so cached copies are regenerated.
GENERATOR_VERSION = 5  # 5: a release of some views keeps the full study's report
MARKER = "SYNTHETIC-COMPLETE.json"


@dataclass(frozen=True)
class SynthSummary:
    """What a generation wrote (counts), and with which arguments."""

    root: Path
    subjects: int
    studies: int
    images: int
    seed: int
    min_size: int
    max_size: int
    chexpert_rows: int
    split_subjects: dict[str, int]
    prevalence: str = "mimic"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (the marker file's ``summary``)."""
        out = asdict(self)
        out["root"] = str(self.root)
        return out


@dataclass(frozen=True)
class _Settings:
    """The arguments that decide a release's bytes, held once: validated, recorded in the
    marker, compared on reuse and spelled into the cache folder's name from this record."""

    subjects: int
    seed: int
    min_size: int
    max_size: int
    prevalence: str
    exclude_subject_ids: tuple[int, ...] = ()  # sorted, unique
    views: tuple[str, ...] = ()  # ViewPosition values written; () = every image

    def validate(self) -> None:
        """Raise a ValueError naming the first bad argument."""
        if self.prevalence not in labels.PREVALENCES:
            raise ValueError(
                f"prevalence must be one of {list(labels.PREVALENCES)}, got {self.prevalence!r}"
            )
        for name, value in (("subjects", self.subjects), ("seed", self.seed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.subjects < 1:
            raise ValueError(f"subjects must be at least 1, got {self.subjects}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        unknown = [v for v in self.views if v not in layout.VIEW_POSITIONS]
        if unknown:
            raise ValueError(f"views must be among {list(layout.VIEW_POSITIONS)}, got {unknown}")
        low, high = SYNTHETIC_SIZE_RANGE
        if not (low <= self.min_size <= self.max_size <= high):
            raise ValueError(
                f"image sizes must satisfy {low} <= min_size <= max_size <= {high}, got "
                f"min_size={self.min_size}, max_size={self.max_size}; "
                "pass e.g. --min-size 512 --max-size 1024"
            )

    def arguments(self) -> dict[str, int | str]:
        """The marker's ``arguments`` record (with the generator version)."""
        arguments: dict[str, int | str] = {
            "generator_version": GENERATOR_VERSION,
            "subjects": self.subjects,
            "seed": self.seed,
            "min_size": self.min_size,
            "max_size": self.max_size,
        }
        if self.prevalence != "mimic":  # keeps the records of MIMIC-rate releases as they were
            arguments["prevalence"] = self.prevalence
        if self.views:
            arguments["views"] = ",".join(self.views)
        if self.exclude_subject_ids:
            arguments["excluded_subject_ids"] = len(self.exclude_subject_ids)
            arguments["excluded_subject_ids_sha256"] = self._excluded_digest()
        return arguments

    def _excluded_digest(self) -> str:
        text = ",".join(str(i) for i in self.exclude_subject_ids)
        return hashlib.sha256(text.encode()).hexdigest()

    def cache_root(self) -> Path:
        """The release's folder in the project cache."""
        name = f"mimic-cxr-n{self.subjects}-s{self.seed}-{self.min_size}-{self.max_size}"
        if self.prevalence != "mimic":
            name += f"-{self.prevalence}"
        if self.views:
            name += "-" + "+".join(v.lower().replace(" ", "_") for v in self.views)
        if self.exclude_subject_ids:
            name += f"-x{self._excluded_digest()[:8]}"
        return cache_dir() / "synthetic" / name


def read_marker(root: Path) -> dict[str, object] | None:
    """The completion record of a generation in ``root``, or None when there is none."""
    try:
        return json.loads((Path(root) / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _summary_from_marker(root: Path, marker: dict[str, object]) -> SynthSummary:
    data = dict(marker["summary"])  # type: ignore[arg-type]
    data["root"] = Path(root)
    return SynthSummary(**data)


def _write_subject(args: tuple[Path, cohort.SubjectPlan, int]) -> int:
    """Render and write one subject's reports and images; returns its number of studies."""
    root, subject, seed = args
    for study in subject.studies:
        key = (seed, subject.index, study.index)
        text = reports.write_report(
            study, np.random.default_rng([key[0], cohort.STREAM_REPORT, *key[1:]])
        )
        report = root / layout.report_path(subject.subject_id, study.study_id)
        study_folder = root / layout.study_dir(subject.subject_id, study.study_id)
        study_folder.mkdir(parents=True, exist_ok=True)
        report.write_text(text, encoding="utf-8")
        anatomy_rng = np.random.default_rng([seed, cohort.STREAM_ANATOMY, *key[1:]])
        anatomy = phantom.sample_anatomy(anatomy_rng, subject.gender, study.lesions, study.setting)
        for image in study.images:
            # keyed by the image's place in the full study, so a release of some views only
            # holds the same pixels as the full release
            rng = np.random.default_rng([seed, cohort.STREAM_RENDER, *key[1:], image.number - 1])
            display = phantom.render(
                image.view, anatomy, study.lesions, image.rows, image.columns, rng
            )
            pixels = dicom_writer.to_stored(display, image, rng)
            dataset = dicom_writer.build_dataset(subject, study, image, pixels)
            target = root / layout.image_path(subject.subject_id, study.study_id, image.dicom_id)
            dicom_writer.write_dicom(target, dataset)
    return len(subject.studies)


def _render_all(
    root: Path, plan: list[cohort.SubjectPlan], seed: int, workers: int
) -> Iterator[int]:
    jobs = ((root, subject, seed) for subject in plan)
    if workers <= 1:
        yield from map(_write_subject, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_write_subject, jobs, chunksize=2)


def default_workers(subjects: int) -> int:
    """Process count: one for small sets (pool start-up dominates), else up to 4 cores."""
    return 1 if subjects < 40 else max(1, min(4, os.cpu_count() or 1))


def generate(
    out_dir: str | os.PathLike[str],
    subjects: int,
    seed: int,
    *,
    min_size: int = 512,
    max_size: int = 1024,
    prevalence: str = "mimic",
    exclude_subject_ids: Collection[int] = (),
    views: Collection[str] = (),
    progress: bool = True,
    workers: int | None = None,
) -> SynthSummary:
    """Write a synthetic MIMIC-CXR release of ``subjects`` patients into ``out_dir``.

    Same arguments, same bytes (whatever ``workers``). ``out_dir`` must be missing, empty or
    a complete earlier generation with the same arguments (then it is returned unchanged).
    ``prevalence`` is ``"mimic"`` (the release's label rates) or ``"enriched"`` (the six paper
    findings mentioned in most studies, for usable cohorts at demo scale; see ``labels``).
    No subject gets an id of ``exclude_subject_ids`` (a release disjoint from another one).
    ``views`` (ViewPosition values, e.g. ``["PA"]``) writes only those images, each with the
    same pixels as in the full release, for a fraction of the time; empty = all.
    """
    settings = _Settings(
        subjects,
        seed,
        min_size,
        max_size,
        prevalence,
        tuple(sorted(set(exclude_subject_ids))),
        tuple(dict.fromkeys(views)),
    )
    return _generate(Path(out_dir), settings, progress=progress, workers=workers)


def _generate(
    out: Path, settings: _Settings, *, progress: bool, workers: int | None
) -> SynthSummary:
    """``generate`` on one settings record (what ``ensure_synthetic`` calls too)."""
    settings.validate()
    arguments = settings.arguments()
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
        marker = read_marker(out)
        if marker is not None and marker.get("arguments") == arguments:
            return _summary_from_marker(out, marker)
        if any(out.iterdir()):
            found = f"a generation with {marker.get('arguments')}" if marker else "other files"
            raise FileExistsError(
                f"{out} is not empty: it holds {found}, not a complete generation with "
                f"{arguments}; choose an empty or new folder, or delete it first"
            )
    plan = cohort.plan_dataset(
        settings.subjects,
        settings.seed,
        settings.min_size,
        settings.max_size,
        settings.prevalence,
        settings.exclude_subject_ids,
    )
    if settings.views:
        plan = cohort.keep_views(plan, settings.views)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        n_studies = sum(len(s.studies) for s in plan)
        bar = progress_bar(
            total=n_studies, unit="study", desc="synthetic MIMIC-CXR", disable=not progress
        )
        with bar:
            for done in _render_all(
                tmp, plan, settings.seed, workers or default_workers(settings.subjects)
            ):
                bar.update(done)
        counts = tables.write_tables(tmp, plan)
        splits = {name: sum(s.split == name for s in plan) for name in layout.SPLITS}
        summary = SynthSummary(
            root=out,
            subjects=settings.subjects,
            studies=n_studies,
            images=counts["record_list"],
            seed=settings.seed,
            min_size=settings.min_size,
            max_size=settings.max_size,
            prevalence=settings.prevalence,
            chexpert_rows=counts["chexpert"],
            split_subjects=splits,
        )
        marker = {"arguments": arguments, "summary": summary.as_dict()}
        marker["summary"]["root"] = "."  # type: ignore[index]
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        _readable(tmp)
        _move_into_place(tmp, out, arguments)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _readable(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; give the release the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for entry in root.iterdir():
        if entry.is_file():
            os.chmod(entry, 0o666 & ~umask)


def _move_into_place(tmp: Path, out: Path, arguments: dict[str, int | str]) -> None:
    """Rename the finished folder onto ``out`` (missing or empty); a concurrent identical
    generation that finished first wins and ours is dropped."""
    try:
        os.replace(tmp, out)
    except OSError:
        marker = read_marker(out)
        if marker is None or marker.get("arguments") != arguments:
            raise FileExistsError(
                f"{out} was filled by someone else during generation; choose another folder"
            ) from None
        shutil.rmtree(tmp, ignore_errors=True)


def synthetic_root(
    subjects: int,
    seed: int,
    min_size: int = 512,
    max_size: int = 1024,
    prevalence: str = "mimic",
) -> Path:
    """Cache folder of one synthetic release (see ``ensure_synthetic``)."""
    return _Settings(subjects, seed, min_size, max_size, prevalence).cache_root()


def ensure_synthetic(
    subjects: int,
    seed: int,
    *,
    min_size: int = 512,
    max_size: int = 1024,
    prevalence: str = "mimic",
    progress: bool = True,
) -> Path:
    """Root of a synthetic release in the cache: generated on first use, reused afterwards."""
    settings = _Settings(subjects, seed, min_size, max_size, prevalence)
    root = settings.cache_root()
    marker = read_marker(root)
    if marker is not None and marker.get("arguments") != settings.arguments():
        shutil.rmtree(root)  # made by an older generator version: our own cache, redo it
    _generate(root, settings, progress=progress, workers=None)
    return root
