"""A chest radiograph phantom: anatomy drawn as soft-edged density layers with numpy.

Rendering works at a reduced height (``RENDER_HEIGHT`` px, enough for the 64-512 px inputs
the models use) and is upscaled once with Pillow, so a 1024 px image costs a few ms.
Coordinates are in units of the image height: ``u`` runs left to right (the patient's right
is on the image left, as radiographs are displayed), ``v`` top to bottom. Density is "how
white": air ~0, soft tissue ~0.9, bone and devices above that. Findings live in
``lesions.py``; this module draws the normal anatomy and the two projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from cxrlib.mimic.synth import lesions
from cxrlib.mimic.synth.draw import polyline_distance, smoothstep, soft
from cxrlib.mimic.synth.labels import Lesion

RENDER_HEIGHT = 256
_LATERAL_VIEWS = frozenset({"LATERAL", "LL", "XTABLE LATERAL", "SWIMMERS"})
_OBLIQUE_VIEWS = frozenset({"LPO", "RAO", "RPO", "LAO"})


@dataclass(frozen=True)
class Anatomy:
    """One patient's chest at one study (all in units of image height)."""

    cx: float  # midline
    apex: float  # lung apices
    dome_right: float  # top of the right hemidiaphragm dome
    dome_left: float
    half_thorax: float  # midline to the lateral inner rib margin
    mediastinum: float  # half width of the upper mediastinum
    ctr: float  # cardiothoracic ratio on a PA view
    body_half: float
    female: bool
    rib_phase: float
    ecg_leads: int  # distractor: monitoring electrodes, never reported


def sample_anatomy(
    rng: np.random.Generator, gender: str, found: dict[str, Lesion], setting: str
) -> Anatomy:
    """Normal variation plus the findings that change anatomy (heart, domes, mediastinum).

    The same number of draws whatever the findings, so a finding changes only itself.
    """
    apex, dome, right_lift, left_drop = rng.uniform(
        (0.10, 0.62, 0.0, 0.0), (0.16, 0.71, 0.03, 0.02)
    )
    dome -= 0.03 if setting == "portable" else 0.0
    dome_right, dome_left = dome - right_lift, dome + left_drop
    ctr = float(np.clip(rng.normal(0.445, 0.03), 0.37, 0.53))
    ctr_jitter = float(rng.normal(0, 0.02))
    mediastinum = float(rng.uniform(0.045, 0.06))
    leads_draw, leads_count = rng.random(), int(rng.integers(0, 5))
    leads = leads_count if leads_draw < (0.5 if setting == "portable" else 0.1) else 0
    cardio = found.get("Cardiomegaly")
    if cardio is not None and cardio.visible:
        ctr = 0.48 + 0.13 * cardio.strength + ctr_jitter
    atel = found.get("Atelectasis")
    if atel is not None and atel.visible:  # volume loss lifts the hemidiaphragm
        lift = 0.01 + 0.05 * atel.strength
        if atel.side in ("right", "bilateral"):
            dome_right -= lift
        if atel.side in ("left", "bilateral"):
            dome_left -= lift
    wide = found.get("Enlarged Cardiomediastinum")
    if wide is not None and wide.visible:
        mediastinum += 0.015 + 0.03 * wide.strength
    return Anatomy(
        cx=0.5 + float(rng.normal(0, 0.012)),
        apex=float(apex),
        dome_right=float(dome_right),
        dome_left=float(dome_left),
        half_thorax=float(rng.uniform(0.33, 0.38)),
        mediastinum=mediastinum,
        ctr=ctr,
        body_half=float(rng.uniform(0.40, 0.46)),
        female=gender == "F",
        rib_phase=float(rng.uniform(-0.01, 0.01)),
        ecg_leads=leads,
    )


@dataclass
class Hemithorax:
    """Where one lung is, in the terms the finding signatures need."""

    mask: np.ndarray  # soft lung mask
    s: np.ndarray  # 0 at the medial edge, 1 at the lateral costal margin
    edge: np.ndarray  # distance to the apical / lateral pleura (pneumothorax rim)
    bottom: np.ndarray  # v of the diaphragm under each pixel column
    cp: float  # v of the costophrenic angle
    apex: float
    zones: dict[str, tuple[float, float]]  # (u, v) of the upper, middle, lower zone
    hilum: tuple[float, float]
    outward: float  # +1 when lateral is to the image right


@dataclass
class Canvas:
    """Layers of one image being drawn; lesions edit them."""

    u: np.ndarray
    v: np.ndarray
    rng: np.random.Generator
    view: str
    anatomy: Anatomy
    found: dict[str, Lesion] = field(default_factory=dict)
    sides: dict[str, Hemithorax] = field(default_factory=dict)
    air: np.ndarray | None = None  # air fraction (lungs), multiplied down by opacities
    density: np.ndarray | None = None  # additive density
    markings: np.ndarray | None = None  # lung vessel texture, suppressed by pneumothorax
    heart_box: tuple[float, float, float, float] = (0.5, 0.6, 0.1, 0.08)  # hx, hy, a, b

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape  # type: ignore[return-value]

    def window(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Pixel rows/columns that can hold points with u in [u0, u1] and v in [v0, v1].

        Small features (lines, nodules) are drawn inside this window only: same pixels,
        a fraction of the work.
        """
        rows = np.flatnonzero((self.v.max(axis=1) >= v0) & (self.v.min(axis=1) <= v1))
        cols = np.flatnonzero((self.u.max(axis=0) >= u0) & (self.u.min(axis=0) <= u1))
        if rows.size == 0 or cols.size == 0:
            return slice(0, 0), slice(0, 0)
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)

    def line(
        self,
        points: list[tuple[float, float]],
        width: float,
        amount: float,
        layer: np.ndarray | None = None,
    ) -> None:
        """Add ``amount * exp(-(d / width)^2)`` around a polyline to ``layer`` (density)."""
        pad = 3.0 * width
        us, vs = [p[0] for p in points], [p[1] for p in points]
        win = self.window(min(us) - pad, max(us) + pad, min(vs) - pad, max(vs) + pad)
        target = self.density if layer is None else layer
        d = polyline_distance(self.u[win], self.v[win], points)
        target[win] += amount * np.exp(-((d / width) ** 2))


def _grid(
    h: int, w: int, rng: np.random.Generator, angle_deg: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in anatomy units, rotated and scaled about the image centre."""
    y = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    x = (np.arange(w, dtype=np.float32) + 0.5 - w / 2) / h
    xx, yy = np.meshgrid(x, y)
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    shift_u, shift_v = rng.normal(0, 0.012, size=2)
    u = (ca * xx - sa * yy) / scale + 0.5 + shift_u
    v = (sa * xx + ca * yy) / scale + 0.5 + shift_v
    return u.astype(np.float32), v.astype(np.float32)


def _hemithorax(c: Canvas, outward: float, dome: float) -> Hemithorax:
    an, u, v = c.anatomy, c.u, c.v
    inner, outer = an.mediastinum, an.half_thorax
    width = outer - inner
    s = (outward * (u - an.cx) - inner) / width
    s_lat = 1.0 - 0.5 * (1.0 - smoothstep((v - an.apex) / 0.28)) ** 2
    top = an.apex + 0.05 * ((s - 0.4) / 0.6) ** 2
    cp = dome + 0.09
    lateral = s > 0.5
    bottom = np.where(
        lateral, dome + (cp - dome) * ((s - 0.5) / 0.5) ** 2, dome + 0.035 * ((0.5 - s) / 0.5) ** 2
    )
    edge = np.minimum(v - top, (s_lat - s) * width)
    margin = np.minimum(np.minimum(s * width, edge), bottom - v)
    mid = an.cx + outward * (inner + 0.5 * width)
    zones = {
        "upper": (mid, an.apex + 0.10),
        "middle": (an.cx + outward * (inner + 0.3 * width), 0.5 * (an.apex + dome) + 0.05),
        "lower": (mid + outward * 0.03, dome - 0.07),
    }
    hilum = (an.cx + outward * (inner + 0.025), an.apex + 0.27)
    return Hemithorax(soft(margin, 0.014), s, edge, bottom, cp, an.apex, zones, hilum, outward)


def _aeration(hemi: Hemithorax, v: np.ndarray) -> np.ndarray:
    """Air along the beam: most in the middle of a lung, less where it thins at the edges
    and where shoulder muscles overlap the apex."""
    middle = np.sqrt(np.clip(4.0 * hemi.s * (1.0 - hemi.s), 0.0, 1.0))
    return hemi.mask * (0.6 + 0.4 * middle) * (0.75 + 0.25 * smoothstep((v - hemi.apex) / 0.15))


def _markings(c: Canvas) -> np.ndarray:
    """Vessel-like streaks radiating from each hilum, tapering toward the periphery."""
    texture = np.zeros(c.shape, dtype=np.float32)
    for side in {id(h): h for h in c.sides.values()}.values():
        du, dv = c.u - side.hilum[0], c.v - side.hilum[1]
        r = np.hypot(du, dv)
        theta = np.arctan2(dv, du)
        polar = c.rng.standard_normal((160, 48)).astype(np.float32)
        polar = ndimage.gaussian_filter(polar, (0.6, 3.0), mode="wrap")
        coords = np.stack([(theta + np.pi) * (160 / (2 * np.pi)), r * (48 / 0.5)])
        val = ndimage.map_coordinates(polar, coords, order=1, mode="wrap")
        vessels = np.maximum(val * 4.0 - 0.6, 0.0) * np.exp(-r / 0.25) * smoothstep(r / 0.04)
        texture += vessels * side.mask
    return texture


def _frontal(c: Canvas) -> np.ndarray:
    an, u, v = c.anatomy, c.u, c.v
    ap = c.view.startswith("AP")
    c.sides = {
        "right": _hemithorax(c, -1.0, an.dome_right),  # patient right = image left
        "left": _hemithorax(c, +1.0, an.dome_left),
    }
    lung = sum(_aeration(h, v) for h in c.sides.values())
    # heart: sits on the diaphragm, bulging to the patient's left; AP magnifies it
    a = an.ctr * an.half_thorax * (1.11 if ap else 1.0)
    b = 0.85 * a
    hx, hy = an.cx + 0.28 * a, 0.5 * (an.dome_right + an.dome_left) - 0.42 * b
    c.heart_box = (hx, hy, a, b)
    tilt = (u - hx) * 0.3  # apex down and to the left
    heart = soft(1.0 - np.hypot((u - hx) / a, (v - hy - tilt * 0.4) / b), 0.12)
    knob = soft(0.03 - np.hypot(u - an.cx - 0.045, v - an.apex - 0.13), 0.015)
    bubble = soft(1.0 - np.hypot((u - an.cx - 0.15) / 0.05, (v - an.dome_left - 0.05) / 0.028), 0.3)
    c.air = lung * (1.0 - 0.9 * heart) * (1.0 - 0.85 * knob)
    c.density = np.zeros(c.shape, dtype=np.float32)
    # body: neck widening into the shoulders, thicker in the middle
    width = 0.09 + (an.body_half - 0.09) * smoothstep((v - 0.01) / 0.15)
    body = soft(width - np.abs(u - an.cx), 0.025)
    thick = np.sqrt(np.maximum(1.0 - ((u - an.cx) / (width + 1e-3)) ** 2, 0.0))
    base = body * (0.45 + 0.45 * thick) - 0.3 * bubble * body
    # bones: spine seen through the mediastinum, posterior and anterior ribs, clavicles
    spine = soft(0.03 - np.abs(u - an.cx), 0.012) * (0.8 + 0.2 * np.cos(v * (2 * np.pi / 0.055)))
    dn = np.abs(u - an.cx) / an.half_thorax
    rib_v = an.apex - 0.015 + an.rib_phase - 0.02 * dn + 0.13 * dn * dn
    phase = (v - rib_v) / 0.058
    k = np.round(phase)
    ribs = np.exp(-(((phase - k) * (0.058 / 0.011)) ** 2)) * ((k >= 0) & (k <= 9) & (dn < 1.1))
    ant_phase = (v - (an.apex + 0.02 + 0.11 * (1.0 - dn))) / 0.05
    ka = np.round(ant_phase)
    ant = np.exp(-(((ant_phase - ka) * (0.05 / 0.012)) ** 2))
    ant *= (ka >= 0) & (ka <= 6) & (dn > 0.35) & (dn < 1.05)
    bones = (0.07 * spine + (0.055 * ribs + 0.025 * ant) * body).astype(np.float32)
    for outward in (-1.0, 1.0):
        clavicle = [
            (an.cx + outward * 0.03, an.apex + 0.04),
            (an.cx + outward * 0.30, an.apex - 0.05),
        ]
        c.line(clavicle, 0.011, 0.12, layer=bones)
    if an.female:
        for outward in (-1.0, 1.0):
            dome = an.dome_right if outward < 0 else an.dome_left
            r = np.hypot((u - an.cx - outward * 0.22) / 0.17, (v - dome - 0.02) / 0.11)
            base = base + 0.07 * soft(1.0 - r, 0.4) * (v > dome - 0.06)
    c.markings = _markings(c)
    lesions.apply(c)
    return base + bones + c.density - 0.62 * c.air + 0.16 * c.markings * c.air


def _lateral(c: Canvas) -> np.ndarray:
    """Lateral projection: both lungs superimposed, heart anterior, spine posterior."""
    an, u, v = c.anatomy, c.u, c.v
    dome = 0.5 * (an.dome_right + an.dome_left) + 0.02
    front, back = an.cx - 0.30, an.cx + 0.27  # anterior (image left) and spine edges
    depth = back - front
    s = (u - front) / depth  # 0 anterior .. 1 posterior: fluid and collapse gather behind
    bottom = dome + 0.02 + 0.10 * np.clip((s - 0.35) / 0.65, 0, 1) ** 2
    top = an.apex + 0.02 + 0.10 * ((s - 0.55) / 0.45) ** 2
    edge = np.minimum(v - top, np.minimum(s, 1.0 - s) * depth)
    margin = np.minimum(edge, bottom - v)
    mask = soft(margin, 0.02)
    zones = {
        "upper": (front + 0.5 * depth, an.apex + 0.12),
        "middle": (front + 0.35 * depth, 0.5 * (an.apex + dome) + 0.05),
        "lower": (front + 0.7 * depth, dome - 0.06),
    }
    hilum = (front + 0.55 * depth, an.apex + 0.27)
    field_ = Hemithorax(mask, s, edge, bottom, dome + 0.12, an.apex, zones, hilum, 1.0)
    c.sides = {"right": field_, "left": field_}
    a = 0.155 * an.ctr / 0.445
    hx, hy = front + 0.28 * depth, dome - 0.1
    c.heart_box = (hx, hy, a, 0.85 * a)
    along, across = (u - hx) * 0.8 + (v - hy) * 0.6, -(u - hx) * 0.6 + (v - hy) * 0.8
    heart = soft(1.0 - np.hypot(along / (1.15 * a), across / (0.8 * a)), 0.3)
    c.air = 0.75 * _aeration(field_, v) * (1.0 - 0.8 * heart)
    c.density = np.zeros(c.shape, dtype=np.float32)
    body = soft(0.46 - np.abs(u - an.cx), 0.03) * soft(v + 0.05, 0.05)
    shoulders = 0.3 * smoothstep((an.apex + 0.22 - v) / 0.18)
    spine = soft(0.05 - np.abs(u - back - 0.06), 0.012) * (0.8 + 0.2 * np.cos(v * 2 * np.pi / 0.06))
    sternum = np.exp(-(((u - front + 0.015) / 0.008) ** 2)) * (v > an.apex) * (v < dome - 0.05)
    base = body * (0.62 + shoulders) + 0.15 * spine + 0.06 * sternum
    c.markings = _markings(c)
    lesions.apply(c)
    return base + c.density - 0.55 * c.air + 0.12 * c.markings * c.air


def render_density(
    view: str,
    anatomy: Anatomy,
    found: dict[str, Lesion],
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Density map (before film response, exposure and noise) at ``shape`` (render size).

    The normal anatomy draws from ``rng`` before any finding does, so the same seed with and
    without a finding differs only by that finding's signature.
    """
    h, w = shape
    angle = float(rng.normal(0, 2.5))
    if view in _OBLIQUE_VIEWS:
        angle += float(rng.choice((-12.0, 12.0)))
    u, v = _grid(h, w, rng, angle, float(rng.uniform(0.92, 1.06)))
    canvas = Canvas(u, v, rng, view, anatomy, found)
    return _lateral(canvas) if view in _LATERAL_VIEWS else _frontal(canvas)


def render(
    view: str,
    anatomy: Anatomy,
    found: dict[str, Lesion],
    rows: int,
    columns: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Display image (float32, 0 black - 1 white, shape rows x columns) of one projection."""
    h = min(rows, RENDER_HEIGHT)
    w = max(8, round(h * columns / rows))
    geometry_rng, exposure_rng = rng.spawn(2)
    density = render_density(view, anatomy, found, (h, w), geometry_rng)
    rng = exposure_rng
    # film response (log-like, so soft tissue and bone compress), then exposure and noise
    img = (1.0 - np.exp(-1.8 * np.maximum(density, 0.0))) / (1.0 - math.exp(-1.8 * 1.35))
    img = ndimage.gaussian_filter(img.astype(np.float32), 0.6)
    img = img * float(rng.uniform(0.85, 1.1)) + float(rng.uniform(-0.06, 0.06))
    img = np.clip(img, 0.0, 1.0) ** float(rng.uniform(0.8, 1.25))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * float(rng.uniform(0.006, 0.02))
    img = _marker(np.clip(img, 0.0, 1.0).astype(np.float32), rng)
    if (h, w) != (rows, columns):
        big = Image.fromarray(img, mode="F").resize((columns, rows), Image.Resampling.BILINEAR)
        img = np.asarray(big)
    return np.clip(img, 0.0, 1.0)


def _marker(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The technologist's lead side marker: a small bright block near a top corner."""
    h, w = img.shape
    size = max(2, h // 28)
    y = int(rng.integers(h // 30, h // 8))
    x = int(rng.integers(w // 30, w // 6))
    if rng.random() < 0.5:
        x = w - x - size
    out = img.copy()
    out[y : y + size, x : x + int(size * 0.7)] = 0.97
    return out
