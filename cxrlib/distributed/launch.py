"""Start a job on several processes with ``torchrun`` and wait for it, from a notebook or script.

The caller (the notebook kernel: machine 0 of the job) writes the job's settings into a private
folder as JSON (tables as pickles beside it), runs ``torchrun`` on the project's worker entry
point (``python -m cxrlib.distributed``), streams what the processes print, and waits. Rank 0
reads the settings and hands them to every other rank through torch.distributed, so the other
machines need no copy of the job: each runs the plain command :meth:`Launch.torchrun_args`
prints (``torchrun --nnodes M --node_rank k ... -m cxrlib.distributed``). Rank 0 writes the job's
results into the folder, atomically, file by file; the caller reads them, then the folder is
deleted. A failing rank stops every process (torchrun's behaviour) and the caller raises one
:class:`DistributedJobError` naming that rank; nothing of the job is left behind.

Machines meet at ``rdzv_endpoint`` (``host:port`` of machine 0) with torchrun's ``static``
rendezvous, where ``--node_rank`` fixes the ranks: machine 0 holds ranks 0..nproc-1, so rank 0,
which writes, runs beside the caller. One machine alone uses ``--standalone`` (a free local port).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from cxrlib.atomic import write_json

#: The worker entry point every process runs (``python -m cxrlib.distributed``).
WORKER_MODULE = "cxrlib.distributed"
JOB_FILE, RESULT_DIR, FAILURE_DIR = "job.json", "result", "failures"
#: Lines of the job's output kept to explain a failure that left no failure note.
_TAIL_LINES = 60
#: Start of a line of an uncaught exception's traceback in a torchrun process.
_FAILING = re.compile(r"(^|\n)\[rank\d+\]:")
#: Seconds the machines of a job have to meet (torchrun's static rendezvous; its default: 600).
RENDEZVOUS_TIMEOUT_S = 1800
#: Seconds torchrun gets to stop its processes after Ctrl-C before it is killed.
_STOP_SECONDS = 30


class DistributedJobError(RuntimeError):
    """A process of a torchrun job failed; the message names its rank and its error."""


@dataclass(frozen=True)
class Launch:
    """How many processes train, and where.

    ``nproc_per_node``: processes on each machine, one per GPU (0: as many as this machine has
    GPUs, 1 without a GPU). ``nnodes``: machines. ``rdzv_endpoint``: ``host:port`` of machine 0,
    which the others can reach (required with several machines). ``node_rank``: this machine
    (0 for the notebook that starts the job and receives its results).
    """

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str = ""
    node_rank: int = 0

    def __post_init__(self) -> None:
        for name, low in (("nproc_per_node", 0), ("nnodes", 1), ("node_rank", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.node_rank >= self.nnodes:
            raise ValueError(
                f"node_rank must be below nnodes ({self.nnodes}), got {self.node_rank}"
            )
        if self.nnodes > 1 and not re.fullmatch(r"[^\s:]+:\d+", self.rdzv_endpoint):
            raise ValueError(
                f"with nnodes = {self.nnodes} machines, rdzv_endpoint must be 'host:port' of "
                f"machine 0 (an address the other machines reach, e.g. 'node001:29500'), got "
                f"{self.rdzv_endpoint!r}"
            )

    @property
    def processes(self) -> int:
        """Processes on this machine (``nproc_per_node`` with 0 resolved)."""
        if self.nproc_per_node:
            return self.nproc_per_node
        import torch

        return max(1, torch.cuda.device_count())

    @property
    def world_size(self) -> int:
        """Processes in the whole job."""
        return self.processes * self.nnodes

    @property
    def distributed(self) -> bool:
        """False for one process: it then runs in the caller itself, as before."""
        return self.world_size > 1

    def torchrun_args(self, node_rank: int | None = None) -> list[str]:
        """torchrun's options for machine ``node_rank`` (this one by default)."""
        rank = self.node_rank if node_rank is None else node_rank
        args = ["--nproc_per_node", str(self.processes), "--max_restarts", "0"]
        if self.nnodes == 1:
            return [*args, "--standalone", "--nnodes", "1"]
        return [
            *args,
            "--nnodes", str(self.nnodes),
            "--node_rank", str(rank),
            "--rdzv_backend", "static",
            "--rdzv_endpoint", self.rdzv_endpoint,
            "--rdzv_conf", f"timeout={RENDEZVOUS_TIMEOUT_S}",
        ]  # fmt: skip

    def follower_command(self, node_rank: int) -> str:
        """The command machine ``node_rank`` runs to join a job machine 0 started."""
        args = self.torchrun_args(node_rank)
        return shlex.join(["torchrun", *args, "-m", WORKER_MODULE])

    def check_device(self, device: str) -> None:
        """Fail before starting when CUDA processes outnumber this machine's GPUs."""
        import torch

        if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
            count = torch.cuda.device_count()
            if self.processes > count:
                raise ValueError(
                    f"nproc_per_node = {self.processes} but this machine has {count} GPU(s): "
                    "use at most one process per GPU (0 = one per GPU)"
                )


def check_global_batch(batch_size: int, launch: Launch, what: str = "batch_size") -> None:
    """A global batch must split evenly over the processes (each takes batch / processes)."""
    world = launch.world_size
    if batch_size % world:
        lower, upper = world * (batch_size // world), world * (batch_size // world + 1)
        options = [b for b in (lower, upper) if b > 0]
        raise ValueError(
            f"{what} = {batch_size} (the global batch) does not split evenly over {world} "
            f"processes; use a multiple of {world}, e.g. {' or '.join(map(str, options))}"
        )


@contextlib.contextmanager
def torchrun_job(
    entry: str,
    settings: Mapping[str, Any],
    launch: Launch,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    out: TextIO | None = None,
) -> Iterator[Path]:
    """Run ``entry``'s ``run_job(settings, tables, result_dir, job_dir)`` on every process of
    ``launch``; yield the folder of the results rank 0 wrote (deleted with the job's folder
    when the ``with`` block ends).

    ``settings`` must be JSON-serialisable; ``tables`` (DataFrames) travel beside them.
    Progress of the processes goes to ``out`` (default: stderr). Raises
    :class:`DistributedJobError` naming the failing rank; KeyboardInterrupt stops the job.
    """
    out = out or sys.stderr
    with tempfile.TemporaryDirectory(prefix="cxrlib-job-") as folder:
        work = Path(folder)
        names = sorted(tables or {})
        for name in names:
            # pickles: exact dtypes; written and read only by this job's own processes
            pd.to_pickle(tables[name], work / f"{name}.pkl")
        write_json(work / JOB_FILE, {"entry": entry, "settings": dict(settings), "tables": names})
        if launch.nnodes > 1:
            others = "\n".join(
                f"  machine {k}: {launch.follower_command(k)}" for k in range(1, launch.nnodes)
            )
            print(
                f"this machine is machine 0 of {launch.nnodes}; start the others with "
                f"(same project, data and run folder paths):\n{others}",
                file=out,
                flush=True,
            )
        _run_torchrun(launch, work, out)
        yield work / RESULT_DIR


def worker_environment(launch: Launch, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment of the torchrun processes: this one, plus a CPU thread budget per
    process (torchrun would otherwise set 1 and print a warning) and, on one machine, gloo
    on the loopback interface (nothing leaves the machine)."""
    env = dict(environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // launch.processes)))
    if launch.nnodes == 1:
        env.setdefault("GLOO_SOCKET_IFNAME", _loopback_interface())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _loopback_interface() -> str:
    return "lo0" if sys.platform == "darwin" else "lo"


def _run_torchrun(launch: Launch, work: Path, out: TextIO) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(),
        "-m", WORKER_MODULE, "--job", str(work / JOB_FILE),
    ]  # fmt: skip
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=worker_environment(launch),
        start_new_session=True,  # Ctrl-C reaches the kernel only; we stop torchrun ourselves
    )
    try:
        _stream(process, out, tail)
        code = process.wait()
    except BaseException:
        _stop(process)
        raise
    if code != 0:
        raise DistributedJobError(_failure_message(work, launch, code, list(tail)))


def _stream(process: subprocess.Popen, out: TextIO, tail: deque[str]) -> None:
    """Copy the job's output to ``out`` as it comes (progress bars included)."""
    assert process.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending, quiet = "", False
    while chunk := os.read(process.stdout.fileno(), 65536):
        text = decoder.decode(chunk)
        # torch prefixes an uncaught exception's traceback with "[rankN]:"; from the first one
        # on, the job is failing and the rest (every rank's traceback, torchrun's summary) is
        # kept for the error message instead of flooding the output
        quiet = quiet or _FAILING.search(text) is not None
        if not quiet:
            out.write(text)
            out.flush()
        pending += text
        *lines, pending = re.split(r"[\r\n]", pending)
        tail.extend(line for line in lines if line.strip())
    if pending.strip():
        tail.append(pending)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to torchrun (it stops its processes), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _failure_message(work: Path, launch: Launch, code: int, tail: list[str]) -> str:
    """One line: which rank failed first and why (from its failure note, else torchrun's)."""
    notes = []
    for path in sorted((work / FAILURE_DIR).glob("rank-*.json")):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            notes.append(json.loads(path.read_text(encoding="utf-8")))
    world = launch.world_size
    if notes:
        # a rank whose peer died fails in its next collective: later, and not the cause
        causes = [n for n in notes if not _is_peer_loss(n["error"])] or notes
        first = min(causes, key=lambda note: note["time"])
        others = len(notes) - 1
        also = f"; {others} other rank(s) failed after it" if others else ""
        where = f" at {first['where']}" if first.get("where") else ""
        hint = ""
        if launch.nnodes > 1 and _is_peer_loss(first["error"]):
            hint = "; a process on another machine probably failed first: see its output"
        return (
            f"rank {first['rank']} of {world} (machine {first['host']}, local rank "
            f"{first['local_rank']}) failed{where}: {first['error']}{also}{hint}; every "
            "process was stopped and the job left no output"
        )
    rank, exitcode = _root_cause(tail)
    if rank is not None:
        reason = _exit_reason(exitcode)
        return (
            f"rank {rank} of {world} failed ({reason}); every process was stopped and the job "
            "left no output. Its last lines are above"
        )
    last = tail[-1] if tail else "no output"
    return (
        f"torchrun exited with code {code} before any rank reported an error ({last}); "
        "the job left no output"
    )


def _is_peer_loss(error: str) -> bool:
    return any(mark in error for mark in ("closed by peer", "DistBackendError", "DistNetworkError"))


def _root_cause(tail: list[str]) -> tuple[int | None, int | None]:
    """The rank and exit code of torchrun's 'Root Cause' summary, when it printed one."""
    text = "\n".join(tail)
    cause = text.split("Root Cause", 1)[-1]
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    exitcode = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    return (
        int(rank.group(1)) if rank else None,
        int(exitcode.group(1)) if exitcode else None,
    )


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            name = signal.Signals(-exitcode).name
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            return f"killed by {name}{hint}"
    return f"exit code {exitcode}"
