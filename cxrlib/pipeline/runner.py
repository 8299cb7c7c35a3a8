"""Run the stage notebooks in order with papermill, skipping the ones that are up to date.

Everything a user can get wrong (profile, stage names, data root, kernel) is checked by
:func:`prepare` before any notebook starts. :func:`run` then executes the selected stages; a
stage's completion record is removed before it runs and written only after it succeeded, so a
failed or interrupted stage re-runs next time (see :mod:`cxrlib.pipeline.fingerprint`).

Kernel choice: notebooks run in the Jupyter kernel ``python3``, and :func:`check_kernel` makes sure
that kernel is this interpreter (jupyter_client swaps a bare ``python`` in a kernelspec for
``sys.executable``), so the executed notebooks see exactly the packages of the environment that
runs ``run_all.py`` -- the same guarantee nbval gets from ``--nbval-current-env``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cxrlib import artifacts as a
from cxrlib.atomic import check_writable, write_json
from cxrlib.config import (
    DATA_ROOT,
    RUN_DIR,
    SYNTHETIC,
    Profile,
    load_profile,
    resolve_parameters,
)
from cxrlib.openmp import apply_openmp_environment
from cxrlib.paths import NOTEBOOKS_DIR, PARAMETERS_DIR, RUNS_DIR, stage_dir
from cxrlib.pipeline import fingerprint, staging
from cxrlib.pipeline.lock import RunLock
from cxrlib.pipeline.report import StageResult, failure_report, summary
from cxrlib.pipeline.stages import (
    STAGES,
    Stage,
    check_stages,
    parameter_schemas,
    select_stages,
)
from cxrlib.pipeline.summary import write_index

KERNEL_NAME = "python3"
#: Packages whose versions are written to ``run.json``.
VERSIONED_PACKAGES: tuple[str, ...] = (
    "cxrlib", "torch", "torchvision", "numpy", "pandas", "scikit-learn", "pydicom",
    "transformers", "peft", "trl", "papermill", "nbclient", "ipykernel",
)  # fmt: skip

#: ``execute(notebook, output, parameters=..., cwd=..., cell_timeout=..., progress_bar=...)``
Executor = Callable[..., Any]


@dataclass(frozen=True)
class Plan:
    """A validated invocation: what to run, where, with which parameters."""

    profile: Profile
    stages: tuple[Stage, ...]
    selected: tuple[Stage, ...]
    notebooks_dir: Path
    run_dir: Path
    #: stage -> resolved parameters (``run_dir`` excluded)
    parameters: dict[str, dict[str, Any]]
    #: stage -> hash of its notebook's code
    notebook_hashes: dict[str, str]

    def stage_dir(self, stage: Stage | str) -> Path:
        return stage_dir(self.run_dir, stage if isinstance(stage, str) else stage.name)

    def upstream_hashes(self, stage: Stage) -> dict[str, str | None]:
        return {up: fingerprint.record_hash(self.stage_dir(up)) for up in stage.upstream}

    def stale_reason(self, stage: Stage) -> str | None:
        """Why ``stage`` must re-run now, or None when its record is up to date."""
        return fingerprint.stale_reason(
            self.stage_dir(stage),
            notebook_sha=self.notebook_hashes[stage.name],
            parameters=self.parameters[stage.name],
            upstream=self.upstream_hashes(stage),
        )


def prepare(
    profile: str | os.PathLike[str] = "demo",
    *,
    stages: Sequence[Stage] = STAGES,
    notebooks_dir: str | os.PathLike[str] = NOTEBOOKS_DIR,
    parameters_dir: str | os.PathLike[str] = PARAMETERS_DIR,
    run_dir: str | os.PathLike[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    start: str | None = None,
    stop: str | None = None,
) -> Plan:
    """Load and validate everything; raise ValueError/FileNotFoundError on the first problem."""
    check_stages(stages)
    loaded = load_profile(profile, parameters_dir)
    selected = select_stages(stages, only=only, start=start, stop=stop)
    nb_dir = Path(notebooks_dir).resolve()
    schemas = parameter_schemas(nb_dir, stages)
    for stage in stages:
        if RUN_DIR not in schemas[stage.name]:
            raise ValueError(
                f"{nb_dir / stage.notebook}: the parameters cell must declare {RUN_DIR!r} (the "
                "runner sets it)"
            )
    hashes = {stage.name: fingerprint.notebook_hash(nb_dir / stage.notebook) for stage in stages}
    parameters = resolve_parameters(loaded, schemas, data_root=data_root)
    folder = Path(run_dir).expanduser().resolve() if run_dir else RUNS_DIR / loaded.name
    check_writable(folder, what="run folder (--run-dir)", folder=True)
    for values in parameters.values():
        root = values.get(DATA_ROOT)
        if root not in (None, SYNTHETIC) and folder.is_relative_to(root):
            raise ValueError(
                f"run folder {folder} is inside the data root {root}, which is read-only; "
                "pass --run-dir DIR outside it"
            )
    return Plan(loaded, tuple(stages), tuple(selected), nb_dir, folder, parameters, hashes)


def status_lines(plan: Plan) -> list[str]:
    """One line per stage: ``done``, ``missing`` or ``stale (why)``, as a run would see it."""
    width = max(len(s.name) for s in plan.stages)
    lines, will_run = [], set()
    for stage in plan.stages:
        reason = plan.stale_reason(stage)
        rerun = next((up for up in stage.upstream if up in will_run), None)
        if reason is None and rerun:
            reason = f"upstream {rerun} will re-run"
        if staging.interrupted(plan.stage_dir(stage)):
            will_run.add(stage.name)
            state = "interrupted (the next run restores its previous outputs, then re-runs it)"
        elif reason is None:
            state = "done"
        else:
            will_run.add(stage.name)
            state = "missing" if reason == fingerprint.NOT_RUN else f"stale ({reason})"
        mark = "*" if stage in plan.selected else " "
        lines.append(f"{mark} {stage.name:<{width}}  {state}")
    return lines


def run(
    plan: Plan,
    *,
    force: bool = False,
    execute: Executor | None = None,
    kernel_name: str = KERNEL_NAME,
    progress_bar: bool | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the selected stages: 0 when all succeeded, 1 when one failed; Ctrl-C propagates."""
    out, err = out or sys.stdout, err or sys.stderr
    if execute is None:
        check_kernel(kernel_name)
        apply_openmp_environment()  # before the first kernel starts: kernels inherit it
        execute = papermill_executor(kernel_name)
    progress_bar = err.isatty() if progress_bar is None else progress_bar
    with RunLock(plan.run_dir), _sigterm_as_interrupt():
        for stage in plan.stages:  # stage runs killed outright get their previous outputs back
            if staging.recover(plan.stage_dir(stage), stage.reusable):
                print(
                    f"note: {stage.name} had been interrupted; previous outputs restored", file=out
                )
        _check_unselected_upstream(plan, out)
        _write_run_info(plan, kernel_name)
        results: list[StageResult] = []
        chosen = {s.name for s in plan.selected}
        for stage in plan.stages:
            if stage.name not in chosen:
                results.append(StageResult(stage.name, "not selected"))
                continue
            reason = "forced (--force)" if force else plan.stale_reason(stage)
            if reason is None:
                print(f"skip {stage.name}: up to date", file=out, flush=True)
                results.append(StageResult(stage.name, "skipped", reason="up to date"))
                continue
            print(f"run  {stage.name}: {reason}", file=out, flush=True)
            result = _run_stage(plan, stage, execute, progress_bar, out, err)
            results.append(result)
            if result.outcome != "ran":
                rest = plan.stages[plan.stages.index(stage) + 1 :]
                results += [StageResult(s.name, "not started") for s in rest if s.name in chosen]
                print(summary(results, plan.run_dir), file=out, flush=True)
                if result.outcome == "interrupted":
                    raise KeyboardInterrupt
                return 1
        write_index(plan.run_dir)
    print(summary(results, plan.run_dir), file=out, flush=True)
    return 0


def _check_unselected_upstream(plan: Plan, out: TextIO) -> None:
    """Refuse a selection whose inputs never completed; note inputs that are stale."""
    chosen = {s.name for s in plan.selected}
    by_name = {s.name: s for s in plan.stages}
    for up in dict.fromkeys(u for s in plan.selected for u in s.upstream if u not in chosen):
        if fingerprint.record_hash(plan.stage_dir(up)) is None:
            readers = ", ".join(s.name for s in plan.selected if up in s.upstream)
            raise ValueError(
                f"stage {readers} reads {up}, which has not completed in {plan.run_dir}; "
                f"include it in the selection (e.g. --from {up})"
            )
        reason = plan.stale_reason(by_name[up])
        if reason is not None:
            print(
                f"note: {up} is stale ({reason}) but not selected: its current outputs are used",
                file=out,
                flush=True,
            )


def check_kernel(kernel_name: str = KERNEL_NAME) -> None:
    """Make sure the Jupyter kernel ``kernel_name`` runs this very interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    install = f"{sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as exc:
        raise ValueError(
            f"no Jupyter kernel named {kernel_name!r}; install one for this environment: {install}"
        ) from exc
    exe = spec.argv[0] if spec.argv else ""
    # jupyter_client replaces exactly these names with sys.executable when it starts a kernel.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if exe not in bare and os.path.abspath(exe) != os.path.abspath(sys.executable):
        raise ValueError(
            f"the Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {exe}, not this "
            f"interpreter ({sys.executable}), so notebooks would miss this environment's "
            f"packages; remove that kernelspec or reinstall it with: {install}"
        )


def main(
    argv: Sequence[str] | None = None,
    *,
    stages: Sequence[Stage] = STAGES,
    notebooks_dir: str | os.PathLike[str] = NOTEBOOKS_DIR,
    parameters_dir: str | os.PathLike[str] = PARAMETERS_DIR,
    execute: Executor | None = None,
) -> int:
    """``run_all.py``: parse the command line, validate, run. Use with ``cxrlib.cli.run_cli``."""
    args = _parser(stages).parse_args(argv)
    only = None if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    if only == []:
        raise ValueError(
            f"--only needs at least one stage name, got {args.only!r}; e.g. --only 03 or "
            "--only 04_llama_setup,05_llama_training"
        )
    t0 = time.perf_counter()
    plan = prepare(
        args.profile,
        stages=stages,
        notebooks_dir=notebooks_dir,
        parameters_dir=parameters_dir,
        run_dir=args.run_dir,
        data_root=args.data_root,
        only=only,
        start=args.start,
        stop=args.stop,
    )
    print(f"profile {plan.profile.name} ({plan.profile.path}); run folder {plan.run_dir}")
    if args.list:
        print("\n".join(status_lines(plan)))
        print("(* = selected)")
        return 0
    code = run(plan, force=args.force, execute=execute)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return code


def _run_stage(
    plan: Plan, stage: Stage, execute: Executor, progress_bar: bool, out: TextIO, err: TextIO
) -> StageResult:
    """Execute one stage and write its record; never raises for a failure inside the notebook."""
    folder = staging.StageFolder(plan.stage_dir(stage), stage.reusable)
    folder.begin()
    executed = plan.run_dir / a.NOTEBOOKS_DIR / Path(stage.notebook).name
    executed.parent.mkdir(parents=True, exist_ok=True)
    upstream = plan.upstream_hashes(stage)
    t0 = time.perf_counter()
    try:
        execute(
            plan.notebooks_dir / stage.notebook,
            executed,
            parameters={**plan.parameters[stage.name], RUN_DIR: str(plan.run_dir)},
            cwd=plan.notebooks_dir,
            cell_timeout=plan.profile.cell_timeout,
            progress_bar=progress_bar,
        )
        missing = [rel for rel in stage.outputs if not (folder.folder / rel).exists()]
        if missing:
            raise _MissingOutputs(
                f"the notebook finished but did not write {', '.join(missing)} in {folder.folder}"
            )
    except KeyboardInterrupt:
        folder.rollback()
        return _interrupted(stage, executed, time.perf_counter() - t0, err)
    except Exception as exc:  # any failure of the stage: report it, keep the runner alive
        folder.rollback()
        wall = time.perf_counter() - t0
        if getattr(exc, "ename", None) == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            return _interrupted(stage, executed, wall, err)
        print(failure_report(stage.name, exc, executed), file=err, flush=True)
        if not _is_known_failure(exc):
            tail = traceback.format_exception(exc)[-6:]
            print("  runner traceback (last lines):\n" + "".join(tail).rstrip(), file=err)
        return StageResult(stage.name, "failed", wall)
    wall = time.perf_counter() - t0
    fingerprint.write_record(
        folder.folder,
        stage=stage.name,
        notebook_sha=plan.notebook_hashes[stage.name],
        parameters=plan.parameters[stage.name],
        upstream={k: v for k, v in upstream.items() if v is not None},
        wall_s=wall,
    )
    folder.commit()
    print(f"done {stage.name} in {wall:.1f} s", file=out, flush=True)
    return StageResult(stage.name, "ran", wall)


class _MissingOutputs(RuntimeError):
    """A notebook ran to the end without writing a required output."""


def _interrupted(stage: Stage, executed: Path, wall: float, err: TextIO) -> StageResult:
    print(
        f"interrupted during {stage.name}: its partial outputs were discarded (earlier complete "
        f"outputs, if any, are kept) and it re-runs next time; partial notebook: {executed}",
        file=err,
        flush=True,
    )
    return StageResult(stage.name, "interrupted", wall)


def _is_known_failure(exc: BaseException) -> bool:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    return isinstance(
        exc, PapermillExecutionError | CellTimeoutError | DeadKernelError | _MissingOutputs
    )


def papermill_executor(kernel_name: str) -> Executor:
    """papermill with this project's settings (see the module docstring for the kernel)."""
    import papermill
    import zmq
    from traitlets.config import Config

    # Encrypt kernel traffic when possible: also silences ipykernel's plain-TCP warning per stage.
    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    # Stop the kernel at once when a stage ends. Its outputs are saved by then; a graceful
    # shutdown after Ctrl-C lets a still-running cell answer on closed sockets, and the kernel
    # then prints a ZMQError traceback into the user's terminal.
    config.NotebookClient.shutdown_kernel = "immediate"

    def execute(
        notebook: Path,
        output: Path,
        *,
        parameters: Mapping[str, Any],
        cwd: Path,
        cell_timeout: float | None,
        progress_bar: bool,
    ) -> None:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            kernel_name=kernel_name,
            cwd=str(cwd),
            progress_bar=progress_bar,
            log_output=False,
            request_save_on_cell_execute=True,
            # nbclient's timeout is an integer number of seconds (None = no limit)
            execution_timeout=math.ceil(cell_timeout) if cell_timeout else None,
            config=config,
        )

    return execute


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``) into KeyboardInterrupt so papermill shuts the kernel down."""

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_run_info(plan: Plan, kernel_name: str) -> None:
    """``run.json``: the resolved parameters and package versions of this run."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    write_json(
        plan.run_dir / a.RUN_FILE,
        {
            "profile": plan.profile.name,
            "profile_file": str(plan.profile.path),
            "description": plan.profile.description,
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_dir": str(plan.run_dir),
            "stages": [s.name for s in plan.stages],
            "selected": [s.name for s in plan.selected],
            "cell_timeout": plan.profile.cell_timeout,
            "parameters": {
                name: {**values, RUN_DIR: str(plan.run_dir)}
                for name, values in plan.parameters.items()
            },
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "kernel": kernel_name,
            "platform": platform.platform(),
            "versions": versions,
        },
    )


def _parser(stages: Sequence[Stage]) -> argparse.ArgumentParser:
    names = ", ".join(s.name for s in stages)
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Run the study's notebooks in order with papermill. A stage whose "
        "parameters, notebook and upstream outputs did not change since it last completed "
        "is skipped.",
        epilog=f"stages: {names} (also accepted as 01 or preprocessing)",
    )
    parser.add_argument(
        "--profile",
        default="demo",
        help="parameter profile: a name in parameters/ (demo, paper, tiny) or a .yaml path "
        "(default: demo)",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="MIMIC-CXR folder (holding files/ and the CSVs); overrides the profile's data_root",
    )
    parser.add_argument("--run-dir", metavar="DIR", help="run folder (default: runs/<profile>/)")
    parser.add_argument("--only", metavar="S[,S]", help="run only these stages")
    parser.add_argument("--from", dest="start", metavar="S", help="run from this stage on")
    parser.add_argument("--until", dest="stop", metavar="S", help="run up to this stage")
    parser.add_argument(
        "--force", action="store_true", help="re-run the selected stages even if up to date"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print each stage's status (done/stale/missing) and exit",
    )
    return parser
