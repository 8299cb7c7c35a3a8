"""CNN abnormality classification (paper sections 4.2 and 4.4): zoo, training, tuning,
evaluation and Grad-CAM. Knows about images and labels, never about report text."""

from cxrlib.classify.evaluate import (
    DEFAULT_THRESHOLD,
    binary_metrics,
    bootstrap_auc_ci,
    evaluate_predictions,
    f1_max_threshold,
)
from cxrlib.classify.experiment import TASKS, TrainedModel, train_model
from cxrlib.classify.train import TrainConfig, fit, load_checkpoint, save_checkpoint
from cxrlib.classify.zoo import ARCHITECTURES, Classifier, create_model

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_THRESHOLD",
    "TASKS",
    "Classifier",
    "TrainConfig",
    "TrainedModel",
    "binary_metrics",
    "bootstrap_auc_ci",
    "create_model",
    "evaluate_predictions",
    "f1_max_threshold",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_model",
]
