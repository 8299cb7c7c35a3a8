"""Small drawing primitives shared by the phantom and the finding signatures."""

from __future__ import annotations

import numpy as np
from PIL import Image


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth ramp between (soft edges without aliasing)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def soft(margin: np.ndarray, edge: float) -> np.ndarray:
    """Soft mask from a signed margin (positive inside) with an edge ``edge`` wide."""
    return smoothstep(margin / edge + 0.5)


def lowfreq(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth N(0,1)-ish noise with about ``cells`` bumps across: blob margins and haze."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(img)


def _segment_distance(
    u: np.ndarray, v: np.ndarray, p: tuple[float, float], q: tuple[float, float]
) -> np.ndarray:
    du, dv = q[0] - p[0], q[1] - p[1]
    t = np.clip(((u - p[0]) * du + (v - p[1]) * dv) / max(du * du + dv * dv, 1e-9), 0, 1)
    return np.hypot(u - p[0] - t * du, v - p[1] - t * dv)


def polyline_distance(
    u: np.ndarray, v: np.ndarray, points: list[tuple[float, float]]
) -> np.ndarray:
    """Distance of every pixel to a polyline (devices, bronchograms, clavicles)."""
    dist = _segment_distance(u, v, points[0], points[1])
    for p, q in zip(points[1:-1], points[2:], strict=True):
        np.minimum(dist, _segment_distance(u, v, p, q), out=dist)
    return dist
