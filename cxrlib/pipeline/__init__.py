"""The pipeline: ordered stages, resumable papermill execution, run reports.

``run_all.py`` is :func:`cxrlib.pipeline.runner.main`; the stage list is
:data:`cxrlib.pipeline.stages.STAGES`.
"""

from cxrlib.pipeline.stages import STAGES, Stage, find_stage, select_stages

__all__ = ["STAGES", "Stage", "find_stage", "select_stages"]
