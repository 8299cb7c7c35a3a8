"""Where a model runs: one answer for the CNNs and the report model alike."""

from __future__ import annotations

from cxrlib.choices import DEVICES


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is a
    clear error. Returns the device name (``torch.device`` and ``.to()`` accept it)."""
    import torch  # here, not at import: reading a profile must not load torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for but torch sees no CUDA GPU: use device = 'auto' or 'cpu'"
        )
    return device
