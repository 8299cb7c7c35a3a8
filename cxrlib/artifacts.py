"""Stage names and the file names of their outputs: the one place writers, readers and the
runner share (docs/ARCHITECTURE.md describes what each holds).

Free of heavy imports on purpose: the runner checks which stages are complete from these names
without loading torch or transformers.
"""

from __future__ import annotations

from cxrlib.mimic.layout import DICOM_ID, SPLIT_COLUMN, STUDY_ID

# --- the run folder ------------------------------------------------------------------------
RUN_FILE = "run.json"  # resolved parameters and package versions of the last run
INDEX_FILE = "index.html"  # the run's summary page
NOTEBOOKS_DIR = "notebooks"  # executed copies of the stage notebooks (and their HTML)
STAGE_RECORD_FILE = ".stage.json"  # a stage's completion record
LOCK_FILE = ".run.lock"  # held by the run in progress

# --- stages --------------------------------------------------------------------------------
PREPROCESSING = "01_preprocessing"
CNN_TUNING = "02_cnn_tuning"
CNN_TRAIN_TEST = "03_cnn_train_test"
LLAMA_SETUP = "04_llama_setup"
LLAMA_TRAINING = "05_llama_training"
RESULTS_ANALYSIS = "06_results_analysis"

# 01_preprocessing
COHORT_FILE = "cohort.csv"
COUNTS_FILE = "counts.csv"
REPORT_SAMPLES_FILE = "report_samples.csv"
SUBJECT_SPLITS_FILE = "subject_splits.csv"
CACHE_DIR = "images"
DATA_SOURCE_FILE = "data_source.json"  # which data the run read: the look-alike or a real root
LABEL_PREVALENCE_FILE = "label_prevalence.csv"
LABEL_PREVALENCE_FIGURE = "label_prevalence.png"
EXAMPLES_FIGURE = "examples.png"

# 02_cnn_tuning
COMPARISON_FILE = "architecture_comparison.csv"
GRID_FILE = "grid_results.csv"
BEST_PARAMS_FILE = "best_params.csv"
COMPARISON_FIGURE = "architecture_comparison.png"
GRID_FIGURE = "grid_results.png"

# 03_cnn_train_test
METRICS_FILE = "metrics.csv"
PREDICTIONS_FILE = "predictions.csv"
PROBS_FILE = "report_image_probs.csv"
EMBEDDINGS_FILE = "report_image_embeddings.npz"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "training_logs"
PAPER_COMPARISON_FILE = "paper_comparison.csv"
LEARNING_CURVES_FIGURE = "learning_curves.png"
ROC_FIGURE = "roc_curves.png"
CONFUSION_FIGURE = "confusion_matrices.png"
RELIABILITY_FIGURE = "reliability.png"
PAPER_COMPARISON_FIGURE = "paper_comparison.png"
GRADCAM_FIGURE = "gradcam.png"

# 04_llama_setup
MODEL_DIR = "model"
MODEL_FILE = "model.json"
LORA_FILE = "lora_config.json"
# the base model's reports before fine-tuning (LoRA still zero) for whole splits, and again
# with every image given another image of its split (the control, as stage 05's)
ZERO_SHOT_FILE = "zero_shot.csv"
CONVERSATION_FIGURE = "conversation_example.png"
ZERO_SHOT_CONTROL_FILE = "zero_shot_shuffled_images.csv"
# optional column of the guided report tables: what each prompt added to the paper's
# instruction (the classifier's hint), so that a reader sees what the model was told
HINT_COLUMN = "hint"

# 05_llama_training: keyed by ``guided`` (False: the paper's prompt, True: CNN-guided)
ADAPTER_DIRS = {False: "adapter", True: "adapter_guided"}
TRAINING_LOG_FILES = {False: "training_log.csv", True: "training_log_guided.csv"}
LOSS_CURVE_FILE = "loss_curve.png"
AUGMENTATION_FIGURE = "augmentation_examples.png"  # with augment: training images as drawn
# columns of the generated-report tables (+ ``input_from`` in a control, ``hint`` when guided)
GENERATED_COLUMNS = (STUDY_ID, DICOM_ID, SPLIT_COLUMN, "reference", "generated")
GENERATED_FILES = {False: "generated_reports.csv", True: "generated_reports_guided.csv"}
RELOAD_FILE = "reload_check.json"
# controls: each adapter's reports again, every image given another image's input (the
# unguided adapter another image, the guided one another image's classifier hint)
CONTROL_FILES = {
    False: "generated_reports_shuffled_images.csv",
    True: "generated_reports_guided_shuffled_hints.csv",
}

# 06_results_analysis
CE_FILE = "ce_metrics.csv"
NLG_FILE = "nlg_metrics.csv"
PER_FINDING_FILE = "ce_per_finding.csv"
LENGTHS_FILE = "report_lengths.csv"
EVALUATED_REPORTS_FILE = "evaluated_reports.csv"
GENERATED_LABELS_FILE = "generated_labels.csv"
CONTROLS_FILE = "image_dependence.csv"
REPORT_SCORES_FILE = "report_scores.csv"
REPORT_SCORES_FIGURE = "report_scores.png"
PER_FINDING_FIGURE = "ce_per_finding.png"
CONTROLS_FIGURE = "image_dependence.png"
GALLERY_FIGURE = "gallery.png"
LENGTHS_FIGURE = "report_lengths.png"
