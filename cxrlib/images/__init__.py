"""Images: the preprocessing cache, the CNN dataset and its augmentation (no disease knowledge).

Modules, imported one by one (this package imports nothing, so that stage 01 builds its cache
without loading torch): ``decode`` (reading and resizing one image), ``cache`` (the
preprocessing cache), ``normalization`` (how pixels become model input), ``transforms``
(tensors and training augmentation), ``dataset`` (the CNN dataset and loader).
"""
