"""Radiographic signatures of the findings, drawn onto a phantom canvas.

Each signature follows the textbook sign and varies in side, size and strength:
effusion (blunted costophrenic angle, meniscus; layering haze on portable films),
pneumothorax (lucent apical/lateral rim without vessel markings and a thin pleural line),
consolidation (dense, lobar-shaped opacity with air bronchograms), pneumonia (patchy,
ill-defined opacities), atelectasis (plate-like basal band; the raised hemidiaphragm is in
``phantom.sample_anatomy``), cardiomegaly (the heart size, also there). Distractors make the
task realistic: edema haze, nodules, pleural caps, devices and unreported ECG leads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cxrlib.mimic.synth import draw as p
from cxrlib.mimic.synth.labels import Lesion

if TYPE_CHECKING:
    from cxrlib.mimic.synth.phantom import Canvas, Hemithorax

_LATERAL = frozenset({"LATERAL", "LL", "XTABLE LATERAL", "SWIMMERS"})


def _sides(c: Canvas, lesion: Lesion) -> list[Hemithorax]:
    if lesion.side in ("right", "left"):
        return [c.sides[lesion.side]]
    unique = {id(h): h for h in c.sides.values()}  # a lateral view has one lung field
    return list(unique.values())


def _effusion(c: Canvas, lesion: Lesion) -> None:
    layered = c.view.startswith("AP") and c.rng.random() < 0.5  # supine: fluid lies behind
    for hemi in _sides(c, lesion):
        height = 0.01 + 0.22 * lesion.strength**1.3
        s = np.clip(hemi.s, 0.0, 1.2)
        level = hemi.cp - height * (0.35 + 0.65 * s**1.5)  # meniscus: higher at the wall
        column = p.soft(np.minimum(hemi.s + 0.05, 1.08 - hemi.s), 0.04)
        fluid = p.soft(c.v - level, 0.02) * column * p.soft(hemi.cp + 0.015 - c.v, 0.01)
        if layered:
            ramp = p.smoothstep((c.v - hemi.apex) / (hemi.cp - hemi.apex))
            haze = 0.5 * lesion.strength * ramp * hemi.mask
            fluid = np.maximum(0.5 * fluid, haze)
        c.air *= 1.0 - 0.93 * fluid
        c.density += 0.05 * fluid


def _pneumothorax(c: Canvas, lesion: Lesion) -> None:
    for hemi in _sides(c, lesion):
        # wide enough to survive downsampling to 64 px: a rim of 2-8 % of the image width
        thickness = 0.035 + 0.09 * lesion.strength
        span = max(hemi.cp - hemi.apex, 0.1)
        local = thickness * np.clip(1.0 - (c.v - hemi.apex) / (0.85 * span), 0.15, 1.0)
        rim = hemi.mask * p.soft(local - hemi.edge, 0.004)
        c.markings *= 1.0 - rim
        c.density -= 0.3 * (0.5 + 0.5 * lesion.strength) * rim
        line = hemi.mask * np.exp(-(((hemi.edge - local) / 0.003) ** 2))
        c.density += 0.15 * (0.5 + 0.5 * lesion.strength) * line
        c.density += 0.04 * lesion.strength * hemi.mask * (1.0 - rim)  # collapsed lung


def _consolidation(c: Canvas, lesion: Lesion) -> None:
    rng = c.rng
    for hemi in _sides(c, lesion):
        cu, cv = hemi.zones[lesion.zone or "lower"]
        cu, cv = cu + rng.normal(0, 0.015), cv + rng.normal(0, 0.015)
        rx = 0.055 + 0.07 * lesion.strength
        ry = rx * rng.uniform(0.7, 1.0)
        r = np.hypot((c.u - cu) / rx, (c.v - cv) / ry) + 0.3 * p.lowfreq(rng, c.shape, 6)
        fill = p.soft(1.0 - r, 0.25) * hemi.mask
        for _ in range(int(rng.integers(1, 4))):  # air bronchograms
            end = (cu + rng.normal(0, 0.6 * rx), cv + rng.normal(0, 0.6 * ry))
            tube = np.zeros(c.shape, dtype=np.float32)
            c.line([hemi.hilum, end], 0.0035, 1.0, layer=tube)
            c.density -= 0.12 * lesion.strength * tube * fill
        c.air *= 1.0 - (0.62 + 0.35 * lesion.strength) * fill


def _patches(c: Canvas, hemi: Hemithorax, zone: str, amount: float) -> None:
    """Ill-defined patchy opacities clustered in one zone."""
    rng = c.rng
    cu, cv = hemi.zones[zone or "lower"]
    g = np.zeros(c.shape, dtype=np.float32)
    for _ in range(int(rng.integers(4, 9))):
        pu, pv = cu + rng.normal(0, 0.05), cv + rng.normal(0, 0.045)
        sig = rng.uniform(0.018, 0.045)
        g += rng.uniform(0.5, 1.0) * np.exp(-((c.u - pu) ** 2 + (c.v - pv) ** 2) / (2 * sig * sig))
    texture = np.clip(0.65 + 0.35 * p.lowfreq(rng, c.shape, 14), 0.0, 1.2)
    c.air *= 1.0 - amount * np.clip(g * texture, 0.0, 1.0) * hemi.mask


def _pneumonia(c: Canvas, lesion: Lesion) -> None:
    for hemi in _sides(c, lesion):
        _patches(c, hemi, lesion.zone, 0.3 + 0.45 * lesion.strength)


def _lung_opacity(c: Canvas, lesion: Lesion) -> None:
    shown = ("Pneumonia", "Consolidation", "Atelectasis", "Edema")
    if any(c.found.get(k) is not None and c.found[k].visible for k in shown):
        return  # the opacity is one of those already drawn
    for hemi in _sides(c, lesion):
        _patches(c, hemi, lesion.zone, 0.2 + 0.3 * lesion.strength)


def _atelectasis(c: Canvas, lesion: Lesion) -> None:
    rng = c.rng
    for hemi in _sides(c, lesion):
        cu, lower_v = hemi.zones["lower"]
        cv = lower_v + 0.04 - rng.uniform(0.0, 0.04)
        # thick enough to survive downsampling to 64 px: a band of 1-2 % of the image height
        length = 0.10 + 0.14 * lesion.strength
        thick = 0.010 + 0.014 * lesion.strength
        tilt = rng.normal(0, 0.15)
        along = (c.u - cu) * np.cos(tilt) + (c.v - cv) * np.sin(tilt)
        perp = -(c.u - cu) * np.sin(tilt) + (c.v - cv) * np.cos(tilt)
        band = np.exp(-((perp / thick) ** 2)) * p.soft(length / 2 - np.abs(along), 0.02)
        c.air *= 1.0 - (0.55 + 0.35 * lesion.strength) * band * hemi.mask
        crowding = p.soft(c.v - (cv - 0.05), 0.05) * hemi.mask
        c.air *= 1.0 - 0.2 * lesion.strength * crowding


def _edema(c: Canvas, lesion: Lesion) -> None:
    for hemi in _sides(c, Lesion(lesion.strength, "bilateral")):
        d = np.hypot(c.u - hemi.hilum[0], c.v - hemi.hilum[1])
        c.air *= 1.0 - 0.45 * lesion.strength * np.exp(-d / 0.13) * hemi.mask
    c.markings *= 1.0 + 1.2 * lesion.strength


def _nodule(c: Canvas, lesion: Lesion) -> None:
    rng = c.rng
    hemi = _sides(c, lesion)[0]
    cu, cv = hemi.zones[lesion.zone or "upper"]
    cu, cv = cu + rng.normal(0, 0.03), cv + rng.normal(0, 0.03)
    disk = p.soft(0.008 + 0.025 * lesion.strength - np.hypot(c.u - cu, c.v - cv), 0.006)
    c.air *= 1.0 - 0.85 * disk * hemi.mask
    c.density += 0.04 * disk


def _pleural_cap(c: Canvas, lesion: Lesion) -> None:
    for hemi in _sides(c, lesion):
        cap = hemi.mask * p.soft(0.01 + 0.02 * lesion.strength - hemi.edge, 0.006)
        c.air *= 1.0 - 0.6 * cap * (c.v < hemi.apex + 0.15)


def _fracture(c: Canvas, lesion: Lesion) -> None:
    """A healing rib fracture: a small callus on the lateral chest wall."""
    rng = c.rng
    hemi = _sides(c, lesion)[0]
    cu = c.anatomy.cx + hemi.outward * c.anatomy.half_thorax * rng.uniform(0.85, 1.0)
    cv = hemi.apex + rng.uniform(0.12, 0.35)
    callus = p.soft(0.006 + 0.006 * lesion.strength - np.hypot(c.u - cu, c.v - cv), 0.004)
    c.density += 0.08 * callus


def _device_paths(c: Canvas, device: str) -> tuple[list[tuple[float, float]], float, float]:
    """(points, width, density) of one device on this view."""
    an, rng = c.anatomy, c.rng
    cx, apex = an.cx, an.apex
    hx, hy = c.heart_box[0], c.heart_box[1]
    dome = 0.5 * (an.dome_right + an.dome_left)
    if c.view in _LATERAL:
        paths = {
            "ett": ([(cx - 0.05, -0.05), (cx - 0.05, apex + 0.12)], 0.006, 0.3),
            "ng": ([(cx + 0.03, -0.05), (cx + 0.05, dome), (cx - 0.05, dome + 0.08)], 0.004, 0.3),
            "ij_line": ([(cx - 0.02, apex - 0.06), (cx - 0.06, apex + 0.2)], 0.0035, 0.35),
            "picc": ([(cx + 0.02, apex - 0.02), (cx - 0.06, apex + 0.2)], 0.003, 0.35),
            "pacemaker": ([(cx - 0.28, apex + 0.05), (hx, hy)], 0.003, 0.45),
            "chest_tube": ([(cx + 0.2, dome), (cx + 0.12, apex + 0.1)], 0.0065, 0.3),
        }
    else:
        o = -1.0 if rng.random() < 0.6 else 1.0
        paths = {
            "ett": (
                [(cx + 0.004, -0.05), (cx + 0.002, apex + 0.04), (cx, apex + 0.12)],
                0.006,
                0.32,
            ),
            "ng": (
                [
                    (cx + 0.012, -0.05),
                    (cx + 0.01, apex + 0.25),
                    (cx + 0.03, an.dome_left),
                    (cx + 0.12, an.dome_left + 0.06),
                    (cx + 0.17, an.dome_left + 0.09),
                ],
                0.004,
                0.32,
            ),
            "ij_line": (
                [
                    (cx - 0.11, -0.02),
                    (cx - 0.06, apex + 0.05),
                    (cx - 0.03, apex + 0.14),
                    (cx - 0.025, apex + 0.22),
                ],
                0.0035,
                0.4,
            ),
            "picc": (
                [
                    (cx + 0.48, apex + 0.07),
                    (cx + 0.30, apex + 0.02),
                    (cx + 0.12, apex + 0.05),
                    (cx - 0.02, apex + 0.2),
                ],
                0.003,
                0.4,
            ),
            "pacemaker": (
                [
                    (cx + 0.22, apex + 0.03),
                    (cx + 0.08, apex + 0.15),
                    (cx - 0.03, apex + 0.3),
                    (hx - 0.02, hy + 0.02),
                ],
                0.003,
                0.5,
            ),
            "chest_tube": (
                [
                    (cx + o * 0.43, dome - 0.02),
                    (cx + o * 0.34, dome - 0.08),
                    (cx + o * 0.25, apex + 0.12),
                    (cx + o * 0.18, apex + 0.06),
                ],
                0.0065,
                0.3,
            ),
        }
    points, width, amount = paths[device]
    jitter = [(a + rng.normal(0, 0.006), b + rng.normal(0, 0.006)) for a, b in points]
    return jitter, width, amount


def _devices(c: Canvas, lesion: Lesion) -> None:
    for device in filter(None, lesion.zone.split(",")):
        points, width, amount = _device_paths(c, device)
        c.line(points, width, amount)
        if device == "pacemaker":  # the generator can
            box = np.minimum(0.03 - np.abs(c.u - points[0][0]), 0.02 - np.abs(c.v - points[0][1]))
            c.density += 0.9 * p.soft(box, 0.004)
        elif device == "chest_tube":  # lucent lumen
            c.line(points, 0.4 * width, -0.12)


def _ecg_leads(c: Canvas) -> None:
    """Monitoring electrodes and wires: bright rings and lines that no report mentions."""
    rng, an = c.rng, c.anatomy
    for _ in range(an.ecg_leads):
        cu = an.cx + rng.uniform(-0.35, 0.35)
        cv = rng.uniform(an.apex - 0.05, 0.8)
        win = c.window(cu - 0.03, cu + 0.03, cv - 0.03, cv + 0.03)
        r = np.hypot(c.u[win] - cu, c.v[win] - cv)
        c.density[win] += 0.35 * np.exp(-(((r - 0.012) / 0.003) ** 2))
        edge = (cu + rng.uniform(-0.3, 0.3), float(rng.choice((-0.05, 1.05))))
        c.line([(cu, cv), edge], 0.0025, 0.18)


_SIGNATURES = (
    ("Pleural Effusion", _effusion),
    ("Consolidation", _consolidation),
    ("Pneumonia", _pneumonia),
    ("Atelectasis", _atelectasis),
    ("Edema", _edema),
    ("Lung Opacity", _lung_opacity),
    ("Lung Lesion", _nodule),
    ("Pleural Other", _pleural_cap),
    ("Fracture", _fracture),
    ("Pneumothorax", _pneumothorax),
    ("Support Devices", _devices),
)


def apply(c: Canvas) -> None:
    """Draw every visible finding of ``c.found`` onto the canvas layers, then distractors."""
    for label, signature in _SIGNATURES:
        lesion = c.found.get(label)
        if lesion is not None and lesion.visible:
            signature(c, lesion)
    _ecg_leads(c)
