"""Report generation with Llama-3.2-Vision (paper 4.3 and 4.5).

Modules, one job each: ``prompts`` (instruction and conversation format), ``guidance``
(classifier-guided instructions from stage 03), ``tiny_model`` (the offline tiny model),
``pretrain`` (its text-only pre-training), ``backends`` (Unsloth / transformers selection,
offline model loading, LoRA), ``dataset`` (stage 01's report samples as conversations),
``collator`` (label masking), ``train`` (LoRA fine-tuning with early stopping), ``generate``
(greedy batched generation, reload checks), ``stage`` (what notebooks 04 and 05 call).
"""

import warnings

# transformers and peft import tqdm.auto, which warns in a notebook kernel without ipywidgets;
# the project's own progress bars go to the terminal (cxrlib.progress), so the warning tells a
# reader nothing
warnings.filterwarnings("ignore", message="IProgress not found")
