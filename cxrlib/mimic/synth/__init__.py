"""A synthetic MIMIC-CXR look-alike: real layout, CSV schemas, DICOM tags and report style.

MIMIC-CXR is credentialed, so demos and tests run on this generated stand-in; the same code
then runs unchanged on the real release. ``generate`` writes one release into a folder,
``ensure_synthetic`` keeps one per argument set in the project cache. Images are phantoms
whose six paper findings are visible with realistic difficulty; reports agree with labels.
"""

from cxrlib.mimic.synth.generate import (
    SynthSummary,
    ensure_synthetic,
    generate,
    read_marker,
    synthetic_root,
)

__all__ = ["SynthSummary", "ensure_synthetic", "generate", "read_marker", "synthetic_root"]
