"""Profile loading and validation against the notebooks' parameters cells (no kernel started)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cxrlib.config import (
    Parameter,
    available_profiles,
    check_data_root,
    load_profile,
    notebook_parameters,
    resolve_parameters,
)
from cxrlib.paths import NOTEBOOKS_DIR, PARAMETERS_DIR

# Two toy stages: the first reads the data root, the second does not.
SCHEMAS = {
    "01_prep": {
        "run_dir": Parameter("run_dir", "../runs/interactive"),
        "seed": Parameter("seed", 0),
        "data_root": Parameter("data_root", "synthetic"),
        "image_size": Parameter("image_size", 96),
        "val_ratio": Parameter("val_ratio", 0.1),
        "augment": Parameter("augment", True),
        "split_source": Parameter("split_source", "random"),
        "diseases": Parameter("diseases", ["Pneumonia"]),
        "max_images": Parameter("max_images", None),
    },
    "02_train": {
        "run_dir": Parameter("run_dir", "../runs/interactive"),
        "seed": Parameter("seed", 0),
        "lr": Parameter("lr", 0.001),
        "grid_lr": Parameter("grid_lr", [0.001, 0.0003]),
        "architecture": Parameter("architecture", "resnet18"),
        "nproc_per_node": Parameter("nproc_per_node", 1),
        "rdzv_endpoint": Parameter("rdzv_endpoint", ""),
        "uncertain_label": Parameter("uncertain_label", "ignore"),
    },
}


def _profile(tmp_path: Path, text: str, name: str = "toy") -> Path:
    folder = tmp_path / "parameters"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def _resolve(tmp_path: Path, text: str, **kwargs):
    _profile(tmp_path, text)
    return resolve_parameters(load_profile("toy", tmp_path / "parameters"), SCHEMAS, **kwargs)


def test_defaults_common_and_stage_values_combine(tmp_path):
    resolved = _resolve(
        tmp_path,
        "common: {seed: 7}\nstages:\n  01_prep: {image_size: 64, val_ratio: 0}\n",
    )
    assert resolved == {
        # run_dir is never resolved from a profile: the runner injects it
        "01_prep": {
            "seed": 7,
            "data_root": "synthetic",
            "image_size": 64,
            "val_ratio": 0,  # an int is a valid float
            "augment": True,
            "split_source": "random",
            "diseases": ["Pneumonia"],
            "max_images": None,
        },
        "02_train": {
            "seed": 7,
            "lr": 0.001,
            "grid_lr": [0.001, 0.0003],
            "architecture": "resnet18",
            "nproc_per_node": 1,
            "rdzv_endpoint": "",
            "uncertain_label": "ignore",
        },
    }


def test_a_rendezvous_endpoint_is_host_and_port_or_empty(tmp_path):
    for endpoint in ("node001:29500", "10.0.0.1:1234", ""):
        text = f"stages:\n  02_train: {{rdzv_endpoint: '{endpoint}'}}\n"
        assert _resolve(tmp_path, text)["02_train"]["rdzv_endpoint"] == endpoint


def test_stage_value_beats_common(tmp_path):
    resolved = _resolve(tmp_path, "common: {seed: 7}\nstages:\n  02_train: {seed: 3}\n")
    assert (resolved["01_prep"]["seed"], resolved["02_train"]["seed"]) == (7, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown stage, with the close match suggested
        (
            "stages:\n  01_prepp: {}\n",
            ["unknown stage '01_prepp'", "'01_prep'", "01_prep, 02_train"],
        ),
        # a short name is not a profile key: the full name is suggested
        ("stages:\n  prep: {}\n", ["unknown stage 'prep'"]),
        # misspelt parameter: suggestion plus the valid names
        (
            "stages:\n  01_prep: {image_sise: 64}\n",
            ["stages.01_prep.image_sise", "did you mean 'image_size'", "split_source"],
        ),
        # a parameter of another stage
        ("stages:\n  01_prep: {lr: 0.1}\n", ["stages.01_prep.lr is not a parameter of 01_prep"]),
        ("common: {learning_rate: 0.1}\n", ["common.learning_rate is declared by no stage"]),
        ("stages:\n  01_prep: {run_dir: x}\n", ["set by the runner", "--run-dir"]),
        # types follow the notebook default
        (
            "stages:\n  01_prep: {image_size: '96'}\n",
            ["image_size must be an integer", "'96' (str)"],
        ),
        ("stages:\n  01_prep: {image_size: 9.5}\n", ["must be an integer", "9.5 (float)"]),
        ("stages:\n  01_prep: {image_size: true}\n", ["must be an integer", "True (bool)"]),
        ("stages:\n  01_prep: {augment: 1}\n", ["augment must be true or false"]),
        ("stages:\n  01_prep: {split_source: 3}\n", ["split_source must be of type str"]),
        ("stages:\n  01_prep: {diseases: Pneumonia}\n", ["diseases must be a list"]),
        ("common: {seed: 1.5}\n", ["common.seed must be an integer"]),
        # PyYAML reads 1e-3 as text: the message says how to write it
        ("stages:\n  02_train: {lr: 1e-3}\n", ["lr must be a number", "1.0e-4"]),
        ("stages:\n  01_prep: {data_root: null}\n", ["data_root is required", "--data-root DIR"]),
        ("stages:\n  01_prep: {data_root: 5}\n", ["must be 'synthetic' or a folder path"]),
        # list elements: type of the default's elements, then the parameter's rule
        ("stages:\n  02_train: {grid_lr: [1e-3]}\n", ["grid_lr[0] must be a number", "1.0e-4"]),
        ("stages:\n  02_train: {grid_lr: [0.1, -1.0]}\n", ["grid_lr[1] must be > 0, got -1.0"]),
        ("stages:\n  01_prep: {diseases: [Pneumonitis]}\n", ["diseases[0] must be one of"]),
        ("stages:\n  01_prep: {diseases: [1]}\n", ["diseases[0] must be of type str"]),
        # names and ranges are checked here, not when the stage runs
        (
            "stages:\n  02_train: {architecture: resnet19}\n",
            ["architecture must be one of", "got 'resnet19'", "did you mean 'resnet18'"],
        ),
        (
            "stages:\n  01_prep: {split_source: offical}\n",
            ["split_source must be one of ['random', 'official']", "did you mean 'official'"],
        ),
        ("stages:\n  01_prep: {image_size: 0}\n", ["image_size must be in [8, 4096], got 0"]),
        ("stages:\n  01_prep: {val_ratio: 1.5}\n", ["val_ratio must be in [0, 1), got 1.5"]),
        ("common: {seed: -1}\n", ["seed must be >= 0, got -1"]),
        ("stages:\n  02_train: {nproc_per_node: -1}\n", ["nproc_per_node must be >= 0"]),
        (
            "stages:\n  02_train: {rdzv_endpoint: node001}\n",
            ["rdzv_endpoint must be 'host:port' of machine 0", "got 'node001'"],
        ),
        (
            "stages:\n  02_train: {uncertain_label: u-ones}\n",
            ["uncertain_label must be one of ['ignore', 'ones', 'zeros']"],
        ),
    ],
)
def test_invalid_profiles_name_file_and_key(tmp_path, text, expected):
    with pytest.raises(ValueError) as info:
        _resolve(tmp_path, text)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "parameters" / "toy.yaml"))
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stage:\n  01_prep: {}\n", ["unknown top-level key 'stage'", "did you mean 'stages'"]),
        ("stages: [01_prep]\n", ["stages must be a mapping"]),
        ("stages:\n  01_prep: 3\n", ["stages.01_prep must be a mapping"]),
        ("cell_timeout: -1\n", ["cell_timeout must be a positive number"]),
        ("cell_timeout: true\n", ["cell_timeout must be a positive number"]),
        ("stages: {01_prep: [\n", ["not valid YAML"]),
        ("- a\n- b\n", ["expected a mapping"]),
    ],
)
def test_malformed_profile_files(tmp_path, text, expected):
    _profile(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_profile("toy", tmp_path / "parameters")
    for fragment in expected:
        assert fragment in str(info.value)


def test_unknown_profile_lists_available(tmp_path):
    _profile(tmp_path, "", "demo")
    _profile(tmp_path, "", "paper")
    with pytest.raises(
        ValueError,
        match=r"unknown profile 'dmeo' \(did you mean 'demo'\?\); "
        r"available: demo, paper",
    ):
        load_profile("dmeo", tmp_path / "parameters")


def test_profile_given_as_a_file_path(tmp_path):
    path = _profile(tmp_path, "description: mine\ncell_timeout: 30\n", "custom")
    profile = load_profile(str(path))
    assert (profile.name, profile.description, profile.cell_timeout) == ("custom", "mine", 30)
    with pytest.raises(FileNotFoundError, match="profile file not found"):
        load_profile(str(tmp_path / "absent.yaml"))


def _mimic_root(tmp_path: Path, marker: str) -> Path:
    root = tmp_path / "mimic"
    root.mkdir()
    if marker == "files":
        (root / "files").mkdir()
    else:
        (root / marker).write_text("")
    return root


@pytest.mark.parametrize("marker", ["files", "cxr-record-list.csv.gz", "mimic-cxr-2.0.0-split.csv"])
def test_data_root_accepted_when_it_looks_like_mimic(tmp_path, marker):
    root = _mimic_root(tmp_path, marker)
    resolved = _resolve(tmp_path, f"stages:\n  01_prep: {{data_root: {root}}}\n")
    assert resolved["01_prep"]["data_root"] == str(root)


def test_data_root_rejected_when_missing_or_not_mimic(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_root: folder not found: .*absent"):
        _resolve(tmp_path, f"stages:\n  01_prep: {{data_root: {tmp_path / 'absent'}}}\n")
    (tmp_path / "photos").mkdir()
    with pytest.raises(ValueError, match="does not look like MIMIC-CXR.*files/"):
        _resolve(tmp_path, f"stages:\n  01_prep: {{data_root: {tmp_path / 'photos'}}}\n")


def test_data_roots_left_unchecked_on_request(tmp_path):
    """Reading what a profile sets must not need its data (e.g. the paper profile's MIMIC-CXR)."""
    absent = tmp_path / "absent"
    text = f"stages:\n  01_prep: {{data_root: {absent}, image_size: 64}}\n"
    resolved = _resolve(tmp_path, text, check_data_roots=False)
    assert resolved["01_prep"]["data_root"] == str(absent)
    assert resolved["01_prep"]["image_size"] == 64
    # every other check still applies
    with pytest.raises(ValueError, match="image_size"):
        _resolve(tmp_path, "stages:\n  01_prep: {image_size: big}\n", check_data_roots=False)


def test_command_line_data_root_overrides_and_is_relative_to_cwd(tmp_path, monkeypatch):
    root = _mimic_root(tmp_path, "files")
    monkeypatch.chdir(tmp_path)
    # the profile's null would be an error; --data-root replaces it before validation
    resolved = _resolve(tmp_path, "stages:\n  01_prep: {data_root: null}\n", data_root="mimic")
    assert resolved["01_prep"]["data_root"] == str(root)
    with pytest.raises(ValueError, match="--data-root: .*does not look like MIMIC-CXR"):
        _resolve(tmp_path, "", data_root="parameters")


def test_synthetic_is_passed_through():
    assert check_data_root("synthetic") == "synthetic"


def _write_notebook(path: Path, parameters_source: str) -> Path:
    nb = new_notebook(
        cells=[new_code_cell(parameters_source, metadata={"tags": ["parameters"]})],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)
    return path


def test_notebook_parameters_cell_is_the_schema(tmp_path):
    nb = _write_notebook(
        tmp_path / "n.ipynb",
        'run_dir = "../runs/interactive"  # run folder\nimage_size = 96  # px\n'
        "ratios = [0.1, 0.2]  # val, test\nlimit = None  # no limit\n",
    )
    params = notebook_parameters(nb)
    assert {k: p.default for k, p in params.items()} == {
        "run_dir": "../runs/interactive",
        "image_size": 96,
        "ratios": [0.1, 0.2],
        "limit": None,
    }
    assert params["image_size"].help == "px"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # papermill drops a line with a second '=' (only logging it): caught, not silently lost
        ('n = 3  # used when mode == "a"\nm = 1  # ok\n', "cannot read parameter.s. n of"),
        ("n = (\n", "not valid Python"),
    ],
)
def test_parameters_cell_papermill_cannot_read(tmp_path, source, message):
    nb = _write_notebook(tmp_path / "n.ipynb", source)
    with pytest.raises(ValueError, match=message):
        notebook_parameters(nb)


def test_notebook_without_parameters_cell(tmp_path):
    nb = _write_notebook(tmp_path / "n.ipynb", "n = 3\n")
    notebook = nbformat.read(nb, as_version=4)
    notebook.cells[0].metadata["tags"] = []
    nbformat.write(notebook, nb)
    with pytest.raises(ValueError, match="no cell is tagged 'parameters'"):
        notebook_parameters(nb)


def test_notebook_parameters_must_be_literals(tmp_path):
    nb = _write_notebook(tmp_path / "n.ipynb", "size = 96\nhalf = size // 2\n")
    with pytest.raises(ValueError, match="default of parameter 'half' is not a literal"):
        notebook_parameters(nb)
    with pytest.raises(FileNotFoundError, match="notebook not found"):
        notebook_parameters(tmp_path / "absent.ipynb")


def test_shipped_profiles_parse_and_name_known_stages():
    from cxrlib.pipeline.stages import STAGES

    assert {"demo", "paper", "tiny", "full"} <= set(available_profiles(PARAMETERS_DIR))
    for name in ("demo", "paper", "tiny", "full"):
        profile = load_profile(name)
        assert profile.description
        assert set(profile.stages) <= {s.name for s in STAGES}
    assert load_profile("paper").stages["01_preprocessing"]["image_size"] == 224


@pytest.mark.parametrize("name", ["demo", "tiny", "paper", "full"])
def test_shipped_profiles_validate_against_the_notebooks(name, tmp_path):
    from cxrlib.pipeline.stages import STAGES, parameter_schemas

    missing = [s.notebook for s in STAGES if not (NOTEBOOKS_DIR / s.notebook).is_file()]
    if missing:
        pytest.skip(f"stage notebooks not written yet: {', '.join(missing)}")
    schemas = parameter_schemas()
    profile = load_profile(name)
    if name in ("paper", "full"):
        with pytest.raises(ValueError, match="data_root is required: pass --data-root"):
            resolve_parameters(profile, schemas)
        unchecked = resolve_parameters(profile, schemas, check_data_roots=False)
        assert unchecked["01_preprocessing"]["data_root"] is None  # the user must pass it
        root = _mimic_root(tmp_path, "files")
        resolved = resolve_parameters(profile, schemas, data_root=root)
        assert resolved["01_preprocessing"]["data_root"] == str(root)
    else:
        resolved = resolve_parameters(profile, schemas)
        assert resolved["01_preprocessing"]["data_root"] == "synthetic"


def test_every_parameter_rule_names_a_notebook_parameter():
    """A rule for a parameter no notebook declares would never be applied."""
    from cxrlib.config import PARAMETER_RULES
    from cxrlib.pipeline.stages import STAGES

    declared = {name for s in STAGES for name in notebook_parameters(NOTEBOOKS_DIR / s.notebook)}
    assert set(PARAMETER_RULES) <= declared, sorted(set(PARAMETER_RULES) - declared)


def test_architecture_choices_are_the_zoo():
    from cxrlib.choices import ARCHITECTURES
    from cxrlib.classify.zoo import ARCHITECTURES as ZOO

    assert tuple(ZOO) == ARCHITECTURES
