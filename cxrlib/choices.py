"""The allowed values of every enumerated setting (and the bounds of a few sizes), in one module
free of heavy imports.

The modules that act on a setting import its values from here, and :mod:`cxrlib.config`
checks profile files against them before any notebook starts, without loading torch: a
misspelt ``architecture: resnet19`` fails in a second, naming the file and key, instead of
minutes later when its stage runs.
"""

from __future__ import annotations

#: torchvision CNNs of the paper (keys of :data:`cxrlib.classify.zoo.ARCHITECTURES`).
ARCHITECTURES: tuple[str, ...] = ("vgg16", "resnet18", "resnet50", "densenet121")
#: ``architecture`` value that lets stage 02's comparison choose.
AUTO_ARCHITECTURE = "auto"
#: One network per finding (the paper) or one network with an output per finding.
TASKS: tuple[str, ...] = ("binary", "multilabel")
#: Weighting of positive examples in the CNN's loss.
POS_WEIGHT_MODES: tuple[str, ...] = ("none", "balanced")
#: Learning-rate schedules of CNN training: a fixed rate (the paper) or cosine decay to 0 over
#: ``max_epochs``, which steadies the last epochs when validation sets are small.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: Where a model runs; ``auto`` picks CUDA when available.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: Report-model backends: Unsloth (CUDA), transformers + peft (``hf``), or ``auto``.
BACKENDS: tuple[str, ...] = ("auto", "unsloth", "hf")
#: Report models built or shipped by the project (stage 04's ``model``): the random tiny
#: stand-in built from the run's reports, and the pre-trained one in ``reportgen/pretrained/``.
TINY_MODEL = "tiny"
TINY_PRETRAINED = "tiny-pretrained"
#: Patient-level split: drawn with ratios (``random``) or MIMIC-CXR's split file.
SPLIT_SOURCES: tuple[str, ...] = ("random", "official")
#: Label rates of the synthetic look-alike.
PREVALENCES: tuple[str, ...] = ("mimic", "enriched")
#: How an uncertain CheXpert label counts in clinical-efficacy scores.
UNCERTAIN_AS: tuple[str, ...] = ("negative", "positive")
#: Side of the cached square images, in pixels (the paper: 224).
IMAGE_SIZE_RANGE: tuple[int, int] = (8, 4096)
#: Sides of the synthetic look-alike's radiographs, in pixels.
SYNTHETIC_SIZE_RANGE: tuple[int, int] = (32, 4096)
#: How a CheXpert "uncertain" (-1) label enters a cohort: left out (the paper; CheXpert's
#: U-Ignore), as positive (U-Ones) or as negative (U-Zeros).
UNCERTAIN_LABELS: tuple[str, ...] = ("ignore", "ones", "zeros")
#: How a label the report does not mention (empty) enters a cohort: left out (the paper) or as
#: negative (usual when all 14 labels train one network).
UNMENTIONED_LABELS: tuple[str, ...] = ("ignore", "zeros")
