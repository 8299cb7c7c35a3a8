"""The papermill runner on toy notebooks: order, resume records, selection, failures, interrupts.

Tests marked with ``kernel`` in their name start real Jupyter kernels (about a second each); the
others inject a fake executor that writes the stage outputs directly.
"""

from __future__ import annotations

import functools
import importlib.machinery
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cxrlib.cli import run_cli
from cxrlib.pipeline import fingerprint
from cxrlib.pipeline.runner import check_kernel, main, prepare, run, status_lines
from cxrlib.pipeline.stages import Stage, find_stage, select_stages

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# 02_beta reads 01_alpha; 03_gamma is independent.
TOY_STAGES = (
    Stage("01_alpha", outputs=("out.txt",)),
    Stage("02_beta", upstream=("01_alpha",), outputs=("out.txt",)),
    Stage("03_gamma", outputs=("out.txt",)),
)

PARAMETERS = 'run_dir = "../runs/interactive"  # run folder\nseed = 0  # seed\nn = 1  # a number\n'
# Each toy stage logs its execution, then writes <run_dir>/<stage>/out.txt.
LOG = 'Path(run_dir, "executions.log").open("a").write("{stage}\\n")\n'
BODIES = {
    "01_alpha": 'Path(run_dir, "01_alpha", "cwd.txt").write_text(os.getcwd())\n'
    'Path(run_dir, "01_alpha", "out.txt").write_text(str(n))\n',
    "02_beta": 'value = int(Path(run_dir, "01_alpha", "out.txt").read_text())\n'
    'Path(run_dir, "02_beta", "out.txt").write_text(str(value + n))\n',
    "03_gamma": 'Path(run_dir, "03_gamma", "out.txt").write_text(str(seed))\n',
}


def _write_notebook(path: Path, stage: str, body: str) -> None:
    setup = f'import os\nfrom pathlib import Path\nPath(run_dir, "{stage}").mkdir(exist_ok=True)\n'
    nb = new_notebook(
        cells=[
            new_markdown_cell(f"# {stage}"),
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            new_code_cell(setup + LOG.format(stage=stage)),
            new_code_cell(body),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    """Toy notebooks and a profile; returns a callable running ``run_all.py`` on them."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for stage, body in BODIES.items():
        _write_notebook(notebooks / f"{stage}.ipynb", stage, body)
    params = tmp_path / "parameters"
    params.mkdir()
    _set_profile(tmp_path, "stages:\n  01_alpha: {n: 1}\n  02_beta: {n: 10}\n")
    (tmp_path / "runs").mkdir()
    return tmp_path


def _set_profile(root: Path, body: str) -> None:
    text = "description: toy\ncell_timeout: 60\ncommon: {seed: 5}\n" + body
    (root / "parameters" / "toy.yaml").write_text(text)


def _run_all(root: Path, *args: str, execute=None) -> int:
    cli = functools.partial(
        main,
        stages=TOY_STAGES,
        notebooks_dir=root / "notebooks",
        parameters_dir=root / "parameters",
        execute=execute,
    )
    return run_cli(cli, ["--profile", "toy", "--run-dir", str(root / "runs" / "toy"), *args])


def _executions(root: Path) -> list[str]:
    log = root / "runs" / "toy" / "executions.log"
    executed = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return executed


def _fake_execute(notebook, output, *, parameters, cwd, cell_timeout, progress_bar):
    """Stand-in for papermill: log and write the stage output like the toy notebooks do."""
    stage = Path(notebook).stem
    folder = Path(parameters["run_dir"], stage)
    folder.mkdir(parents=True, exist_ok=True)
    with Path(parameters["run_dir"], "executions.log").open("a") as log:
        log.write(f"{stage}\n")
    (folder / "out.txt").write_text(json.dumps(parameters, sort_keys=True))
    Path(output).write_text("{}")


# --- real kernels ------------------------------------------------------------------------


def test_kernel_run_resume_and_reruns_only_what_changed(project, capsys):
    run_dir = project / "runs" / "toy"
    assert _run_all(project) == 0
    assert _executions(project) == ["01_alpha", "02_beta", "03_gamma"]
    assert (run_dir / "02_beta" / "out.txt").read_text() == "11"  # read upstream, added n
    assert (run_dir / "03_gamma" / "out.txt").read_text() == "5"  # common seed injected
    # the kernel ran in the notebooks folder
    assert (run_dir / "01_alpha" / "cwd.txt").read_text() == str(project / "notebooks")
    for stage in TOY_STAGES:
        assert (run_dir / stage.name / ".stage.json").is_file()
        executed = nbformat.read(run_dir / "notebooks" / f"{stage.name}.ipynb", as_version=4)
        injected = [
            c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
        ]
        assert f'run_dir = "{run_dir}"' in injected[0].source
    info = json.loads((run_dir / "run.json").read_text())
    assert info["parameters"]["02_beta"] == {"run_dir": str(run_dir), "seed": 5, "n": 10}
    assert info["versions"]["papermill"]
    out = capsys.readouterr().out
    assert f"results: {run_dir}" in out
    assert "run  01_alpha: not run yet" in out

    assert _run_all(project) == 0  # nothing changed: everything skipped
    assert _executions(project) == []
    assert "skip 03_gamma: up to date" in capsys.readouterr().out

    (run_dir / "01_alpha" / "out.txt").unlink()  # a lost artifact: that stage and its dependent
    assert _run_all(project) == 0
    assert _executions(project) == ["01_alpha", "02_beta"]
    assert "run  01_alpha: output missing: out.txt" in capsys.readouterr().out

    _set_profile(project, "stages:\n  01_alpha: {n: 2}\n  02_beta: {n: 10}\n")
    assert _run_all(project) == 0  # a changed parameter: that stage and its dependent
    assert _executions(project) == ["01_alpha", "02_beta"]
    assert "run  02_beta: upstream 01_alpha re-ran" in capsys.readouterr().out
    assert (run_dir / "02_beta" / "out.txt").read_text() == "12"


def test_kernel_failing_cell_is_reported_in_one_screen(project, capsys):
    _write_notebook(
        project / "notebooks" / "02_beta.ipynb",
        "02_beta",
        "size = 3  # the cell that fails\nraise ValueError(f'bad size {size}')\n",
    )
    assert _run_all(project) == 1
    err = capsys.readouterr().err
    executed = project / "runs" / "toy" / "notebooks" / "02_beta.ipynb"
    assert "stage 02_beta failed" in err
    assert "size = 3  # the cell that fails" in err  # the cell's first line
    assert "ValueError: bad size 3" in err
    assert "\x1b[" not in err  # colour codes stripped
    assert f"executed notebook (open it to see every output): {executed}" in err
    assert executed.is_file()
    assert _executions(project) == ["01_alpha", "02_beta"]  # 03 never started
    assert (project / "runs" / "toy" / "01_alpha" / ".stage.json").is_file()
    assert not (project / "runs" / "toy" / "02_beta" / ".stage.json").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "the kernel died"),
        ("import time\ntime.sleep(30)\n", "ran past the profile's cell_timeout"),
    ],
    ids=["dead-kernel", "cell-timeout"],
)
def test_kernel_death_and_timeout_are_stage_failures(project, capsys, body, expected):
    (project / "parameters" / "toy.yaml").write_text("cell_timeout: 1\n")
    _write_notebook(project / "notebooks" / "01_alpha.ipynb", "01_alpha", body)
    assert _run_all(project, "--only", "01") == 1
    assert expected in capsys.readouterr().err
    assert not (project / "runs" / "toy" / "01_alpha" / ".stage.json").exists()


def _start_runner(project: Path) -> subprocess.Popen[str]:
    """``run_all.py`` on the toy project in a process group of its own, as a terminal runs it."""
    script = textwrap.dedent(
        f"""
        import functools, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_pipeline import TOY_STAGES
        from cxrlib.cli import run_cli
        from cxrlib.pipeline.runner import main
        root = Path({str(project)!r})
        cli = functools.partial(main, stages=TOY_STAGES, notebooks_dir=root / "notebooks",
                                parameters_dir=root / "parameters")
        sys.exit(run_cli(cli, ["--profile", "toy", "--run-dir", str(root / "runs" / "toy")]))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell's background job ignores SIGINT; a terminal's foreground job does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), proc.communicate()


def test_kernel_sigterm_leaves_no_record_and_exits_130(project):
    _write_notebook(
        project / "notebooks" / "01_alpha.ipynb",
        "01_alpha",
        'Path(run_dir, "01_alpha", "started").write_text("")\nimport time\ntime.sleep(60)\n',
    )
    proc = _start_runner(project)
    _wait_for(project / "runs" / "toy" / "01_alpha" / "started", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted during 01_alpha" in err
    assert not (project / "runs" / "toy" / "01_alpha" / ".stage.json").exists()


def test_kernel_ctrl_c_prints_one_clean_line(project):
    """Ctrl-C reaches the runner's whole process group; the kernel must not print tracebacks
    (a graceful kernel shutdown let the running cell reply on closed sockets: ZMQError)."""
    _write_notebook(
        project / "notebooks" / "01_alpha.ipynb",
        "01_alpha",
        'Path(run_dir, "01_alpha", "started").write_text("")\n'
        "import time\nfor _ in range(600):\n    time.sleep(0.1)\n",
    )
    proc = _start_runner(project)
    _wait_for(project / "runs" / "toy" / "01_alpha" / "started", proc)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "ZMQError" not in err and "[IPKernelApp]" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert not (project / "runs" / "toy" / "01_alpha" / "started").exists()  # partial: discarded


# --- fake executor -----------------------------------------------------------------------


def test_interrupt_during_a_stage_leaves_no_record(project, capsys):
    def interrupted_in_beta(notebook, output, **kwargs):
        _fake_execute(notebook, output, **kwargs)
        if Path(notebook).stem == "02_beta":
            Path(kwargs["parameters"]["run_dir"], "02_beta", "partial.txt").write_text("half")
            raise KeyboardInterrupt

    assert _run_all(project, execute=_fake_execute) == 0
    run_dir = project / "runs" / "toy"
    assert (run_dir / "02_beta" / ".stage.json").is_file()
    _executions(project)
    before = (run_dir / "02_beta" / "out.txt").read_bytes()
    assert _run_all(project, "--force", execute=interrupted_in_beta) == 130
    assert (run_dir / "01_alpha" / ".stage.json").is_file()
    # the interrupted re-run's partial outputs are gone; the previous complete ones are back,
    # and they are stale because 01_alpha re-ran
    assert (run_dir / "02_beta" / "out.txt").read_bytes() == before
    assert not (run_dir / "02_beta" / "partial.txt").exists()
    assert not list(run_dir.glob(".*previous"))
    captured = capsys.readouterr()
    assert "interrupted during 02_beta" in captured.err
    assert "03_gamma" in captured.out and "not started" in captured.out
    assert _executions(project) == ["01_alpha", "02_beta"]
    assert _run_all(project, execute=_fake_execute) == 0  # resumes where it stopped
    assert _executions(project) == ["02_beta"]  # 03_gamma is still done from the first run


def test_a_stage_that_skips_a_required_output_fails(project, capsys):
    def forgets_output(notebook, output, *, parameters, **kwargs):
        Path(parameters["run_dir"], Path(notebook).stem).mkdir(parents=True, exist_ok=True)

    assert _run_all(project, "--only", "alpha", execute=forgets_output) == 1
    assert "did not write out.txt" in capsys.readouterr().err
    assert not (project / "runs" / "toy" / "01_alpha" / ".stage.json").exists()


def test_force_reruns_selected_stages_and_list_shows_status(project, capsys):
    assert _run_all(project, "--list") == 0
    listing = capsys.readouterr().out
    assert "* 01_alpha  missing" in listing
    assert _run_all(project, "--until", "02", execute=_fake_execute) == 0
    assert _executions(project) == ["01_alpha", "02_beta"]
    capsys.readouterr()
    _set_profile(project, "stages:\n  01_alpha: {n: 3}\n")
    assert _run_all(project, "--list") == 0
    listing = capsys.readouterr().out
    assert "01_alpha  stale (parameter changed: n 1 -> 3)" in listing
    assert "02_beta   stale (parameter changed: n 10 -> 1)" in listing
    assert "03_gamma  missing" in listing
    _set_profile(project, "stages:\n  01_alpha: {n: 1}\n  02_beta: {n: 10}\n")
    assert _run_all(project, "--only", "03_gamma,alpha", "--force", execute=_fake_execute) == 0
    assert _executions(project) == ["01_alpha", "03_gamma"]
    assert "run  01_alpha: forced (--force)" in capsys.readouterr().out
    assert _run_all(project, "--list") == 0
    assert "02_beta   stale (upstream 01_alpha re-ran)" in capsys.readouterr().out


def test_only_a_stage_whose_upstream_never_ran_is_refused(project, capsys):
    assert _run_all(project, "--only", "beta", execute=_fake_execute) == 2
    assert "02_beta reads 01_alpha, which has not completed" in capsys.readouterr().err
    assert _executions(project) == []


def test_only_notes_a_stale_upstream_it_does_not_run(project, capsys):
    assert _run_all(project, execute=_fake_execute) == 0
    _set_profile(project, "stages:\n  01_alpha: {n: 2}\n  02_beta: {n: 10}\n")
    _executions(project)
    capsys.readouterr()
    assert _run_all(project, "--only", "beta", "--force", execute=_fake_execute) == 0
    assert "note: 01_alpha is stale (parameter changed: n 1 -> 2)" in capsys.readouterr().out
    assert _executions(project) == ["02_beta"]


def test_config_errors_exit_2_before_anything_runs(project, capsys):
    _set_profile(project, "stages:\n  01_alpha: {m: 1}\n")
    assert _run_all(project, execute=_fake_execute) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "stages.01_alpha.m is not a parameter" in err
    assert err.count("\n") == 1  # one line
    assert _run_all(project, "--profile", "nope") == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert not (project / "runs" / "toy" / "run.json").exists()


def test_summary_page_hook_is_called_when_present(project, monkeypatch, capsys):
    module = types.ModuleType("cxrlib.summary")
    module.__spec__ = importlib.machinery.ModuleSpec("cxrlib.summary", None)

    def write_index(run_dir):
        Path(run_dir, "index.html").write_text("<html></html>")

    module.write_index = write_index
    monkeypatch.setitem(sys.modules, "cxrlib.summary", module)
    assert _run_all(project, execute=_fake_execute) == 0
    assert f"summary page: {project / 'runs' / 'toy' / 'index.html'}" in capsys.readouterr().out


def test_default_run_folder_is_under_the_project(project):
    plan = prepare(
        "toy",
        stages=TOY_STAGES,
        notebooks_dir=project / "notebooks",
        parameters_dir=project / "parameters",
    )
    assert plan.run_dir == PROJECT_ROOT / "runs" / "toy"
    assert [s.name for s in plan.selected] == [s.name for s in TOY_STAGES]
    assert len(status_lines(plan)) == 3


def test_run_folder_inside_the_data_root_is_refused(project, tmp_path):
    root = tmp_path / "mimic"
    (root / "files").mkdir(parents=True)
    notebooks = project / "notebooks"
    _write_notebook(notebooks / "01_alpha.ipynb", "01_alpha", "")
    nb = nbformat.read(notebooks / "01_alpha.ipynb", as_version=4)
    nb.cells[1].source += 'data_root = "synthetic"  # data\n'
    nbformat.write(nb, notebooks / "01_alpha.ipynb")
    with pytest.raises(ValueError, match="inside the data root"):
        prepare(
            "toy",
            stages=TOY_STAGES,
            notebooks_dir=notebooks,
            parameters_dir=project / "parameters",
            data_root=root,
            run_dir=root / "run",
        )


def test_run_without_executor_checks_the_kernel(project, monkeypatch, tmp_path):
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "other",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    check_kernel()  # the environment's own kernel runs this interpreter
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    with pytest.raises(ValueError, match=r"runs /opt/other/bin/python, not this interpreter"):
        check_kernel()
    plan = prepare(
        "toy",
        stages=TOY_STAGES,
        notebooks_dir=project / "notebooks",
        parameters_dir=project / "parameters",
        run_dir=project / "runs" / "toy",
    )
    with pytest.raises(ValueError, match="ipykernel install"):
        run(plan)
    assert _executions(project) == []


# --- stage selection and records ---------------------------------------------------------


@pytest.mark.parametrize(
    ("only", "start", "stop", "expected"),
    [
        (None, None, None, ["01_alpha", "02_beta", "03_gamma"]),
        (["03_gamma", "01"], None, None, ["01_alpha", "03_gamma"]),  # pipeline order kept
        (["beta"], None, None, ["02_beta"]),
        (None, "02", None, ["02_beta", "03_gamma"]),
        (None, None, "beta", ["01_alpha", "02_beta"]),
        (None, "beta", "02_beta", ["02_beta"]),
    ],
)
def test_select_stages(only, start, stop, expected):
    chosen = select_stages(TOY_STAGES, only=only, start=start, stop=stop)
    assert [s.name for s in chosen] == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"only": ["alpah"]},
            r"unknown stage 'alpah' \(did you mean 'alpha'\?\); stages: 01_alpha",
        ),
        ({"only": ["01"], "start": "02"}, "cannot be combined"),
        ({"start": "03", "stop": "01"}, "comes after"),
    ],
)
def test_select_stages_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_stages(TOY_STAGES, **kwargs)


def test_find_stage_accepts_number_and_short_name():
    assert find_stage("02", TOY_STAGES).name == find_stage("beta", TOY_STAGES).name == "02_beta"


def _inputs(**overrides) -> dict:
    """What a stage ran with; the record under test is written from the defaults."""
    return {
        "notebook_sha": "abc",
        "parameters": {"n": 1},
        "upstream": {"01_alpha": "u1"},
    } | overrides


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: None, None),
        (lambda f: (f / ".stage.json").unlink(), "not run yet"),
        (lambda f: (f / ".stage.json").write_text("{"), "completion record unreadable"),
        (lambda f: (f / "sub" / "b.bin").unlink(), "output missing: sub/b.bin"),
        (lambda f: (f / "a.txt").write_text("other"), "output changed: a.txt"),
        # same size, new mtime: a re-written file counts as changed
        (lambda f: os.utime(f / "a.txt", ns=(1, 1)), "output changed: a.txt"),
        (lambda f: (f / "new.txt").write_text("x"), None),  # extra files are not outputs
        (lambda f: (f / ".x.tmp").write_text("x"), None),
        # a folder write killed half-way (cxrlib.atomic.atomic_dir) is never an output
        (
            lambda f: (
                (f / ".checkpoints.x1y2.tmp").mkdir()
                or (f / ".checkpoints.x1y2.tmp" / "w").write_text("x")
            ),
            None,
        ),
    ],
)
def test_stale_reason_on_outputs(tmp_path, change, expected):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub" / "b.bin").write_bytes(b"\0\1")
    fingerprint.write_record(tmp_path, stage="02_beta", wall_s=1.0, **_inputs())
    assert set(json.loads((tmp_path / ".stage.json").read_text())["outputs"]) == {
        "a.txt",
        "sub/b.bin",
    }
    change(tmp_path)
    assert fingerprint.stale_reason(tmp_path, **_inputs()) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"notebook_sha": "def"}, "notebook changed"),
        ({"parameters": {"n": 2}}, "parameter changed: n 1 -> 2"),
        ({"parameters": {"n": 1, "m": 0}}, "parameter changed: m None -> 0"),
        ({"upstream": {"01_alpha": "u2"}}, "upstream 01_alpha re-ran"),
        ({"upstream": {"01_alpha": None}}, "upstream 01_alpha not done"),
        ({"parameters": {"n": 1.0}}, None),  # JSON compares 1 and 1.0 equal, as Python does
    ],
)
def test_stale_reason_on_inputs(tmp_path, overrides, expected):
    fingerprint.write_record(tmp_path, stage="02_beta", wall_s=1.0, **_inputs())
    assert fingerprint.stale_reason(tmp_path, **_inputs(**overrides)) == expected


def test_notebook_hash_ignores_outputs_and_markdown(tmp_path):
    path = tmp_path / "a.ipynb"
    _write_notebook(path, "01_alpha", "x = 1\n")
    before = fingerprint.notebook_hash(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# another title"
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[3].execution_count = 4
    nbformat.write(nb, path)
    assert fingerprint.notebook_hash(path) == before
    nb.cells[3].source = "x = 2\n"
    nbformat.write(nb, path)
    assert fingerprint.notebook_hash(path) != before


def test_openmp_environment_is_added_where_the_user_set_none():
    from cxrlib.openmp import OPENMP_ENVIRONMENT, apply_openmp_environment

    empty: dict[str, str] = {}
    apply_openmp_environment(empty)
    assert empty == OPENMP_ENVIRONMENT
    chosen = dict.fromkeys(OPENMP_ENVIRONMENT, "7")
    apply_openmp_environment(chosen)
    assert set(chosen.values()) == {"7"}  # a value the user set is kept


def test_record_never_lists_temporary_folders(tmp_path):
    (tmp_path / ".checkpoints.x1y2.tmp").mkdir()
    (tmp_path / ".checkpoints.x1y2.tmp" / "w.safetensors").write_text("half")
    (tmp_path / ".model.a1.old" / "model").mkdir(parents=True)
    (tmp_path / ".model.a1.old" / "model" / "w").write_text("old")
    (tmp_path / "kept.csv").write_text("a\n")
    assert list(fingerprint.scan_outputs(tmp_path)) == ["kept.csv"]


# --- command-line and run-folder errors ----------------------------------------------------


def test_empty_only_is_an_error_not_every_stage(project, capsys):
    assert _run_all(project, "--only", "", execute=_fake_execute) == 2
    assert "--only needs at least one stage name" in capsys.readouterr().err
    assert _executions(project) == []


def test_run_folder_that_is_a_file_fails_before_anything_runs(project, capsys):
    blocker = project / "runs" / "file"
    blocker.write_text("not a folder")
    cli = functools.partial(
        main,
        stages=TOY_STAGES,
        notebooks_dir=project / "notebooks",
        parameters_dir=project / "parameters",
        execute=_fake_execute,
    )
    for run_dir in (blocker, blocker / "sub"):
        assert run_cli(cli, ["--profile", "toy", "--run-dir", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: run folder") and str(blocker) in err, err
        assert err.count("\n") == 1
    assert _executions(project) == []


def test_unwritable_run_folder_fails_before_anything_runs(project, capsys, monkeypatch):
    real_access = os.access
    locked = project / "runs"
    # as root every folder is writable: deny this one explicitly
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    assert _run_all(project, execute=_fake_execute) == 2
    err = capsys.readouterr().err
    assert "no permission to write in" in err and str(locked) in err
    assert _executions(project) == []


def test_second_run_on_a_busy_run_folder_is_refused(project, capsys):
    from cxrlib.pipeline.lock import RunLock

    run_dir = project / "runs" / "toy"
    with RunLock(run_dir):  # another run holds the folder
        assert _run_all(project, execute=_fake_execute) == 2
        err = capsys.readouterr().err
        assert f"run folder {run_dir} is in use by another run" in err
        assert f'"pid": {os.getpid()}' in err
        assert _executions(project) == []
    assert _run_all(project, execute=_fake_execute) == 0  # released: runs normally
    assert _executions(project) == ["01_alpha", "02_beta", "03_gamma"]


def test_a_killed_runners_lock_does_not_block(project):
    run_dir = project / "runs" / "toy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from cxrlib.pipeline.lock import RunLock\n"
            f"with RunLock({str(run_dir)!r}):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # SIGKILL: no clean-up runs
    holder.wait(timeout=30)
    assert _run_all(project, execute=_fake_execute) == 0
