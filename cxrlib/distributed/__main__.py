"""The process torchrun starts: ``python -m cxrlib.distributed [--job JOB]``.

Rank 0 reads the job (``--job``, written by :func:`cxrlib.distributed.launch.torchrun_job` on
machine 0) and hands it to every rank through torch.distributed; every rank then calls the
``run_job(settings, tables, result_dir, job_dir)`` of the job's entry module. ``result_dir`` is
given to rank 0 only: the one process that writes results. ``job_dir`` is the job's folder on
machine 0, for scratch files every process of a machine shares (another machine may not have
it: create it there). Other ranks ignore ``--job``, so the other machines
run the same command without it.

A rank that fails writes a note (rank, machine, error) beside the job, when the job's folder is
on its machine, and re-raises: torchrun then stops every process, and the caller names the
first rank that failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch.distributed.elastic.multiprocessing.errors import record

from cxrlib.atomic import write_json
from cxrlib.distributed import broadcast_object, process_group
from cxrlib.distributed.launch import FAILURE_DIR, RESULT_DIR


def read_job(path: Path) -> dict[str, Any]:
    """The job's JSON, its tables and the folder it lives in (rank 0 only)."""
    job = json.loads(path.read_text(encoding="utf-8"))
    job["tables"] = {name: pd.read_pickle(path.parent / f"{name}.pkl") for name in job["tables"]}
    job["work"] = str(path.parent)
    return job


@record
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cxrlib.distributed", description=__doc__)
    parser.add_argument("--job", type=Path, help="job file (read by rank 0 only)")
    args = parser.parse_args(argv)
    job: dict[str, Any] | None = None
    work = args.job.parent if args.job is not None else None
    try:
        with process_group() as me:
            try:
                if me.is_main:
                    if args.job is None:
                        raise ValueError(
                            "rank 0 needs --job: start the job on machine 0 (the notebook, or "
                            "cxrlib.distributed.launch.torchrun_job); other machines join "
                            "without it"
                        )
                    job = read_job(args.job)
                job = broadcast_object(job)
                work = Path(job["work"])
                module = importlib.import_module(job["entry"])
                result = Path(job["work"]) / RESULT_DIR if me.is_main else None
                if result is not None:
                    result.mkdir(exist_ok=True)
                module.run_job(job["settings"], job["tables"], result, work)
            except BaseException as exc:
                # noted before the process group closes: the peers' errors come later
                _note_failure(work, exc)
                raise
    except BaseException as exc:
        if not _noted(work):
            _note_failure(work, exc)  # the process group itself could not start
        raise


def _noted(work: Path | None) -> bool:
    rank = os.environ.get("RANK", "0")
    return work is not None and (work / FAILURE_DIR / f"rank-{rank}.json").is_file()


def _note_failure(work: Path | None, exc: BaseException) -> None:
    """``failures/rank-<rank>.json`` in the job's folder, when this machine has it."""
    if work is None or not work.is_dir():
        return
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    message = str(exc).strip().splitlines()
    write_json(
        work / FAILURE_DIR / f"rank-{rank}.json",
        {
            "rank": rank,
            "local_rank": local,
            "host": socket.gethostname(),
            "error": f"{type(exc).__name__}: {message[0] if message else ''}".rstrip(": "),
            "where": _where(exc),
            "time": time.time(),
        },
    )


def _where(exc: BaseException) -> str:
    """``file.py:line`` of the innermost frame of the exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""


if __name__ == "__main__":
    main()
