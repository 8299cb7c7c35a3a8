"""How a cached pixel becomes model input: ``(x / 255 - NORMALIZE_MEAN) / NORMALIZE_STD``.

The paper normalises with mean = std = 0.5, so inputs lie in [-1, 1]. Kept apart from
:mod:`cxrlib.images.transforms` (torch, torchvision) so that stage 01 can report the scaled
pixel statistics without loading torch.
"""

from __future__ import annotations

#: One grey channel; the same values serve all three channels of an RGB-input network.
NORMALIZE_MEAN = 0.5
NORMALIZE_STD = 0.5
