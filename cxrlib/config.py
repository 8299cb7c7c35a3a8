"""Profiles (``parameters/<profile>.yaml``) validated against each notebook's ``parameters`` cell.

A notebook's ``parameters`` cell is the schema of its stage: names, defaults and (through the
defaults) types are declared there once and read with ``papermill.inspect_notebook``. A profile
only overrides them. Everything a user can get wrong in a profile is caught here, before any
notebook starts, with one message naming the profile file and the key.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxrlib import choices
from cxrlib.mimic import layout
from cxrlib.paths import PARAMETERS_DIR, PROJECT_ROOT

#: Top-level keys of a profile file.
PROFILE_KEYS: tuple[str, ...] = ("description", "common", "stages", "cell_timeout")
#: Injected by the runner into every notebook; never set in a profile.
RUN_DIR = "run_dir"
#: The stage parameter naming the MIMIC-CXR root; ``--data-root`` overrides it.
DATA_ROOT = "data_root"
#: ``data_root`` value meaning "the synthetic look-alike, generated on first use".
SYNTHETIC = "synthetic"
#: Tables whose presence marks a folder as a MIMIC-CXR root (besides ``files/``).
_ROOT_MARKERS: tuple[layout.TableSpec, ...] = (
    layout.RECORD_LIST,
    layout.METADATA,
    layout.CHEXPERT,
    layout.SPLIT,
)


@dataclass(frozen=True)
class Rule:
    """What a parameter's value (each element, for a list) must be beyond its type: one of
    ``choices``, text matching ``pattern`` (described by ``example``), or a number within
    ``low``..``high`` (``open_low``: ``low`` itself excluded)."""

    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    pattern: str = ""
    example: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule (``"must be one of [...]"``), or None."""
        if self.choices:
            return None if value in self.choices else f"must be one of {list(self.choices)}"
        if self.pattern:
            if not isinstance(value, str) or re.fullmatch(self.pattern, value):
                return None  # the type check reports a non-string
            return f"must be {self.example}"
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None  # the type check reports it
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return None if low_ok and high_ok else f"must be {self.describe()}"

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        left = "(" if self.open_low else "["
        right = ")" if self.open_high else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


_COUNT = Rule(low=1)  # a positive whole number
_NON_NEGATIVE = Rule(low=0)
_POSITIVE = Rule(low=0, open_low=True)
_FRACTION = Rule(low=0, high=1, open_high=True)  # dropout rates, split shares
_SYNTHETIC_SIZE = Rule(low=choices.SYNTHETIC_SIZE_RANGE[0], high=choices.SYNTHETIC_SIZE_RANGE[1])
#: Rules of the stages' parameters by name (a name means the same in every stage). Names not
#: listed get the type check only.
PARAMETER_RULES: dict[str, Rule] = {
    "task": Rule(choices.TASKS),
    "architecture": Rule((*choices.ARCHITECTURES, choices.AUTO_ARCHITECTURE)),
    "architectures": Rule(choices.ARCHITECTURES),
    "lr_schedule": Rule(choices.LR_SCHEDULES),
    "pos_weight": Rule(choices.POS_WEIGHT_MODES),
    "device": Rule(choices.DEVICES),
    "backend": Rule(choices.BACKENDS),
    "split_source": Rule(choices.SPLIT_SOURCES),
    "synthetic_prevalence": Rule(choices.PREVALENCES),
    "uncertain_as": Rule(choices.UNCERTAIN_AS),
    "eval_split": Rule(tuple(s for s in layout.SPLITS if s != "train")),
    "generate_splits": Rule(layout.SPLITS),
    "diseases": Rule(layout.CHEXPERT_LABELS),
    "image_size": Rule(low=choices.IMAGE_SIZE_RANGE[0], high=choices.IMAGE_SIZE_RANGE[1]),
    "synthetic_min_size": _SYNTHETIC_SIZE,
    "synthetic_max_size": _SYNTHETIC_SIZE,
    "seed": _NON_NEGATIVE,
    "synthetic_seed": _NON_NEGATIVE,
    "synthetic_subjects": _COUNT,
    "workers": _COUNT,
    "val_ratio": _FRACTION,
    "test_ratio": _FRACTION,
    "comparison_epochs": _COUNT,
    "comparison_train_images": _NON_NEGATIVE,
    "lr": _POSITIVE,
    "grid_lr": _POSITIVE,
    "tiny_pretrain_lr": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
    "grid_weight_decay": _NON_NEGATIVE,
    "batch_size": _COUNT,
    "grid_batch_size": _COUNT,
    "dropout": _FRACTION,
    "grid_dropout": _FRACTION,
    "lora_dropout": _FRACTION,
    "max_epochs": _POSITIVE,
    "max_steps": _COUNT,
    "patience": _NON_NEGATIVE,
    "n_boot": _COUNT,
    "ci_level": Rule(low=0, high=1, open_low=True, open_high=True),
    "gradcam_examples": _NON_NEGATIVE,
    "grad_accum": _COUNT,
    "warmup_steps": _NON_NEGATIVE,
    "eval_steps": _COUNT,
    "max_length": _COUNT,
    "gen_batch_size": _COUNT,
    "max_new_tokens": _COUNT,
    "reload_examples": _NON_NEGATIVE,
    "zero_shot_examples": _NON_NEGATIVE,
    "gallery_examples": _NON_NEGATIVE,
    "lora_r": _COUNT,
    "lora_alpha": _POSITIVE,
    "tiny_image_size": _COUNT,
    "tiny_patch_size": _COUNT,
    "tiny_vocab_size": _COUNT,
    "tiny_text_hidden": _COUNT,
    "tiny_text_layers": _COUNT,
    "tiny_vision_hidden": _COUNT,
    "tiny_vision_layers": _COUNT,
    "tiny_pretrain_steps": _NON_NEGATIVE,
    # cohort rules beyond the paper (stage 01)
    "views": Rule(layout.VIEW_POSITIONS),
    "uncertain_label": Rule(choices.UNCERTAIN_LABELS),
    "unmentioned_label": Rule(choices.UNMENTIONED_LABELS),
    # several processes and machines (torchrun)
    "nproc_per_node": _NON_NEGATIVE,  # 0: one per GPU of the machine
    "nnodes": _COUNT,
    "rdzv_endpoint": Rule(
        pattern=r"([^\s:]+:\d+)?", example="'host:port' of machine 0 (e.g. 'node001:29500') or ''"
    ),
}


@dataclass(frozen=True)
class Parameter:
    """One entry of a notebook's ``parameters`` cell: its name, literal default and comment."""

    name: str
    default: Any
    help: str = ""


@dataclass(frozen=True)
class Profile:
    """A parsed (not yet validated against notebooks) profile file."""

    name: str
    path: Path
    description: str = ""
    common: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: seconds a single cell may run before the stage fails; None = no limit
    cell_timeout: float | None = None


def notebook_parameters(notebook: str | os.PathLike[str]) -> dict[str, Parameter]:
    """Read the ``parameters`` cell of ``notebook`` (no kernel is started).

    Defaults must be Python literals (the notebook contract): their types are the schema.
    """
    import papermill  # heavy import (nbclient, jupyter): only when a notebook is read

    path = Path(notebook)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    found = papermill.inspect_notebook(str(path))
    missed = [name for name in _assigned_names(path) if name not in found]
    if missed:
        # papermill skips, with only a log line, any line holding two '=' (comment included)
        raise ValueError(
            f"{path}: papermill cannot read parameter(s) {', '.join(missed)} of the parameters "
            "cell: keep one '=' per line (no '=' or '==' inside the comment)"
        )
    params: dict[str, Parameter] = {}
    for name, entry in found.items():
        try:
            default = ast.literal_eval(entry["default"])
        except (ValueError, SyntaxError) as exc:
            raise ValueError(
                f"{path}: the default of parameter {name!r} is not a literal "
                f"({entry['default']!r}); the parameters cell holds literals only, derived "
                "values go in a later cell"
            ) from exc
        params[name] = Parameter(name, default, entry.get("help") or "")
    return params


def _assigned_names(notebook: Path) -> list[str]:
    """Names assigned at the top level of the notebook's ``parameters`` cell, in order."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{notebook}: no cell is tagged 'parameters'; tag the parameters cell")
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise ValueError(f"{notebook}: the parameters cell is not valid Python: {exc}") from exc
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def available_profiles(parameters_dir: str | os.PathLike[str] = PARAMETERS_DIR) -> list[str]:
    """Names of the profile files in ``parameters_dir``, sorted."""
    return sorted(p.stem for p in Path(parameters_dir).glob("*.yaml"))


def load_profile(
    profile: str | os.PathLike[str], parameters_dir: str | os.PathLike[str] = PARAMETERS_DIR
) -> Profile:
    """Load ``parameters/<profile>.yaml`` (or a ``.yaml`` file path) and check its structure."""
    path = _profile_path(profile, Path(parameters_dir))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{_show(path)}: not valid YAML: {exc}") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{_show(path)}: expected a mapping with keys {list(PROFILE_KEYS)}")
    for key in data:
        if key not in PROFILE_KEYS:
            raise ValueError(
                f"{_show(path)}: unknown top-level key {key!r}{_suggest(str(key), PROFILE_KEYS)}; "
                f"allowed: {', '.join(PROFILE_KEYS)}"
            )
    common = _mapping(data.get("common"), path, "common")
    stages = _mapping(data.get("stages"), path, "stages")
    for stage, section in stages.items():
        stages[stage] = _mapping(section, path, f"stages.{stage}")
    timeout = data.get("cell_timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ValueError(
            f"{_show(path)}: cell_timeout must be a positive number of seconds or null "
            f"(no limit), got {timeout!r}"
        )
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ValueError(f"{_show(path)}: description must be text, got {description!r}")
    return Profile(path.stem, path, description, common, stages, timeout)


def resolve_parameters(
    profile: Profile,
    schemas: Mapping[str, Mapping[str, Parameter]],
    *,
    data_root: str | os.PathLike[str] | None = None,
    check_data_roots: bool = True,
) -> dict[str, dict[str, Any]]:
    """Validate ``profile`` against the stages' parameter schemas; return each stage's parameters.

    ``schemas`` maps stage name -> its notebook's parameters, in pipeline order. The result holds,
    per stage, every declared parameter except ``run_dir``: the notebook default, overridden by
    ``common`` (when the stage declares the name), then by the stage's own section. ``data_root``
    (from ``--data-root``) overrides every stage's ``data_root``; data roots come back absolute.
    ``check_data_roots=False`` leaves data roots as written, unchecked: for reading what a
    profile sets (e.g. which synthetic release it generates) on a machine without its data.
    """
    where = _show(profile.path)
    for stage in profile.stages:
        if stage not in schemas:
            raise ValueError(
                f"{where}: unknown stage {stage!r} under 'stages'{_suggest(stage, schemas)}; "
                f"stages: {', '.join(schemas)}"
            )
    for key in profile.common:
        if not any(key in schema for schema in schemas.values()):
            declared = sorted({name for schema in schemas.values() for name in schema} - {RUN_DIR})
            raise ValueError(
                f"{where}: common.{key} is declared by no stage{_suggest(key, declared)}; "
                f"parameters of the stages: {', '.join(declared)}"
            )
    if data_root is not None and not any(DATA_ROOT in schema for schema in schemas.values()):
        raise ValueError(f"--data-root was given but no stage takes {DATA_ROOT!r}")

    resolved: dict[str, dict[str, Any]] = {}
    for stage, schema in schemas.items():
        section = profile.stages.get(stage, {})
        values = {name: p.default for name, p in schema.items() if name != RUN_DIR}
        sources = {name: f"stages.{stage}.{name} (notebook default)" for name in values}
        for key, value in profile.common.items():
            if key in schema:
                values[key], sources[key] = value, f"common.{key}"
        for key, value in section.items():
            if key == RUN_DIR:
                raise ValueError(
                    f"{where}: stages.{stage}.{RUN_DIR} is set by the runner; remove it and "
                    "pass --run-dir DIR instead"
                )
            if key not in schema:
                valid = [name for name in schema if name != RUN_DIR]
                raise ValueError(
                    f"{where}: stages.{stage}.{key} is not a parameter of {stage}"
                    f"{_suggest(key, valid)}; its parameters: {', '.join(valid)}"
                )
            values[key], sources[key] = value, f"stages.{stage}.{key}"
        for key, value in values.items():
            if key == DATA_ROOT:
                if not check_data_roots:
                    values[key] = data_root if data_root is not None else value
                elif data_root is not None:
                    values[key] = check_data_root(data_root, source="--data-root", base=Path.cwd())
                else:
                    values[key] = check_data_root(value, source=f"{where}: {sources[key]}")
            else:
                check_value(key, value, schema[key].default, f"{where}: {sources[key]}")
        resolved[stage] = values
    return resolved


def check_data_root(
    value: Any, *, source: str = DATA_ROOT, base: str | os.PathLike[str] = PROJECT_ROOT
) -> str:
    """Return ``"synthetic"`` or the absolute path of an existing MIMIC-CXR root.

    A relative path is taken from ``base`` (the project root for profiles, the current folder
    for ``--data-root``). ``source`` names where the value came from, for the error message.
    """
    if value is None:
        raise ValueError(
            f"{source} is required: pass --data-root DIR (the MIMIC-CXR folder "
            f"holding files/ and the CSVs), or use {SYNTHETIC!r} for the synthetic look-alike"
        )
    if not isinstance(value, str | os.PathLike):
        raise ValueError(f"{source} must be {SYNTHETIC!r} or a folder path, got {value!r}")
    if str(value) == SYNTHETIC:
        return SYNTHETIC
    root = Path(base, Path(value).expanduser()).resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{source}: folder not found: {root}; pass the MIMIC-CXR folder "
            f"(holding files/ and the CSVs) or {SYNTHETIC!r}"
        )
    markers = [name for spec in _ROOT_MARKERS for name in (spec.filename, spec.plain_filename)]
    if not (root / layout.FILES_DIR).is_dir() and not any((root / m).is_file() for m in markers):
        raise ValueError(
            f"{source}: {root} does not look like MIMIC-CXR: it has no {layout.FILES_DIR}/ "
            f"folder and none of {', '.join(s.filename for s in _ROOT_MARKERS)}; pass the "
            "folder that holds them"
        )
    return str(root)


def check_value(name: str, value: Any, default: Any, where: str) -> None:
    """Check one parameter: its type against the notebook default (each element's, for a
    list) and its rule in :data:`PARAMETER_RULES`; ``where`` names the profile file and key."""
    _check_type(value, default, where)
    rule = PARAMETER_RULES.get(name)
    if isinstance(value, list | tuple):
        element_default = default[0] if isinstance(default, list | tuple) and default else None
        for i, element in enumerate(value):
            if element_default is None and rule and rule.choices:
                element_default = ""
            _check_type(element, element_default, f"{where}[{i}]")
            problem = rule.problem(element) if rule else None
            if problem:
                raise ValueError(f"{where}[{i}] {problem}, got {element!r}")
        return
    problem = rule.problem(value) if rule else None
    if problem:
        raise ValueError(f"{where} {problem}, got {value!r}{_suggest(str(value), rule.choices)}")


def _check_type(value: Any, default: Any, where: str) -> None:
    """Accept ``value`` where the notebook's default is ``default`` (bool is never a number)."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        want = "a number"
    elif isinstance(default, list | tuple):
        ok, want = isinstance(value, list | tuple), "a list"
    elif isinstance(default, dict):
        ok, want = isinstance(value, dict), "a mapping"
    else:
        ok, want = isinstance(value, type(default)), f"of type {type(default).__name__}"
    if ok:
        return
    hint = ""
    if want == "a number" and isinstance(value, str):
        # PyYAML follows YAML 1.1, where 1e-4 (no dot) is text, not a float.
        hint = "; YAML reads exponents without a dot as text: write e.g. 1.0e-4"
    raise ValueError(
        f"{where} must be {want} like the notebook default {default!r}, "
        f"got {value!r} ({type(value).__name__}){hint}"
    )


def _profile_path(profile: str | os.PathLike[str], parameters_dir: Path) -> Path:
    text = str(profile)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"profile file not found: {path}")
        return path.resolve()
    path = parameters_dir / f"{text}.yaml"
    if not path.is_file():
        names = available_profiles(parameters_dir)
        raise ValueError(
            f"unknown profile {text!r}{_suggest(text, names)}; available: "
            f"{', '.join(names) or '(none)'} (files in {_show(parameters_dir)}/)"
        )
    return path


def _mapping(value: Any, path: Path, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(
            f"{_show(path)}: {key} must be a mapping of names to values, got {value!r}"
        )
    return {str(k): v for k, v in value.items()}


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _show(path: Path) -> str:
    """A path as a user reads it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
