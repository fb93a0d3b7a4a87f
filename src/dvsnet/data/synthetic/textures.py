"""Procedural textures and sprites for the street renderer.

A texture here is a small periodic float32 tile looked up by surface coordinates in metres, so
a surface point keeps its appearance wherever the camera is (which keeps the ground-truth flow
photometrically consistent). Sprites are small label + colour images drawn with OpenCV; the
renderer maps them onto vertical planes (people, riders with their bicycles and motorcycles).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dvsnet.data.labels import TRAIN_ID

TILE = 256  # noise tile side in texels (power of two: lookups wrap with `& (TILE - 1)`)
SPRITE = 64  # sprite side in texels
TRANSPARENT = 254  # sprite label of empty texels


def noise_tile(rng: np.random.Generator, octaves: int = 5) -> np.ndarray:
    """(TILE, TILE) float32 periodic fractal noise, zero mean, roughly unit standard deviation."""
    tile = np.zeros((TILE, TILE), np.float32)
    for octave in range(octaves):
        cells = 4 * 2**octave
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        # wrap one cell so the bilinear upsampling is periodic
        grid = np.pad(grid, ((0, 1), (0, 1)), mode="wrap")
        step = TILE // cells
        up = cv2.resize(grid, ((cells + 1) * step, (cells + 1) * step), interpolation=cv2.INTER_LINEAR)
        up = up[step // 2: step // 2 + TILE, step // 2: step // 2 + TILE]
        tile += up * (0.6**octave)
    tile -= tile.mean()
    tile /= tile.std() + 1e-6
    return tile


@dataclass(frozen=True)
class SpriteAtlas:
    """Sprites as arrays: labels (S, SPRITE, SPRITE) uint8 (TRANSPARENT where empty) and colours
    (S, SPRITE, SPRITE, 3) float32 RGB in [0, 1]. Row 0 is the top of the sprite."""

    labels: np.ndarray
    colors: np.ndarray


# sprite kinds: what is drawn, and its width/height in metres (the billboard's size)
SPRITE_KINDS = ("person_front", "person_side", "bicycle_side", "bicycle_back", "motorcycle_side",
                "motorcycle_back")


def _random_colour(rng: np.random.Generator, dark: bool = False) -> tuple[float, float, float]:
    if dark or rng.random() < 0.4:
        level = rng.uniform(0.05, 0.3)
        return tuple(float(np.clip(level + rng.normal(0, 0.04), 0, 1)) for _ in range(3))
    return tuple(float(c) for c in rng.uniform(0.15, 0.9, 3))


def _draw(label: np.ndarray, colour: np.ndarray, shape: str, args: tuple, lab: int,
          rgb: tuple[float, float, float]) -> None:
    """Draw one filled shape into both the label and colour sprite (coordinates in texels)."""
    if shape == "circle":
        centre, radius, thick = args
        cv2.circle(label, centre, radius, lab, thick)
        cv2.circle(colour, centre, radius, rgb, thick)
    elif shape == "rect":
        p0, p1 = args
        cv2.rectangle(label, p0, p1, lab, -1)
        cv2.rectangle(colour, p0, p1, rgb, -1)
    elif shape == "line":
        p0, p1, thick = args
        cv2.line(label, p0, p1, lab, thick)
        cv2.line(colour, p0, p1, rgb, thick)
    elif shape == "poly":
        (points,) = args
        pts = np.array(points, np.int32)
        cv2.fillPoly(label, [pts], lab)
        cv2.fillPoly(colour, [pts], rgb)


def _person(label: np.ndarray, colour: np.ndarray, rng: np.random.Generator, side: bool, lab: int,
            top: int = 0, bottom: int = SPRITE - 1, seated: bool = False) -> None:
    """A person filling rows top..bottom of the sprite, centred; side view walks (legs apart)."""
    s = SPRITE
    h = bottom - top
    skin = tuple(float(c) for c in np.array([0.85, 0.65, 0.5]) * rng.uniform(0.45, 1.05))
    shirt, pants = _random_colour(rng), _random_colour(rng, dark=rng.random() < 0.6)
    cx = s // 2
    head_r = max(2, int(0.07 * h))
    head_c = (cx, top + head_r + 1)
    shoulder = top + int(0.17 * h)
    hip = top + int(0.52 * h)
    half = int(0.11 * s) if not side else int(0.08 * s)
    _draw(label, colour, "rect", ((cx - half, shoulder), (cx + half, hip)), lab, shirt)
    if not seated:
        if side:
            stride = int(0.14 * s * rng.uniform(0.5, 1.2))
            _draw(label, colour, "line", ((cx, hip), (cx - stride, bottom), max(2, s // 14)), lab, pants)
            _draw(label, colour, "line", ((cx, hip), (cx + stride, bottom), max(2, s // 14)), lab, pants)
            _draw(label, colour, "line", ((cx, shoulder + 2), (cx + stride // 2, hip - 2), max(2, s // 20)),
                  lab, shirt)
        else:
            leg = max(2, int(0.05 * s))
            _draw(label, colour, "rect", ((cx - half + 1, hip), (cx - half + 1 + 2 * leg, bottom)),
                  lab, pants)
            _draw(label, colour, "rect", ((cx + half - 1 - 2 * leg, hip), (cx + half - 1, bottom)),
                  lab, pants)
            arm = max(1, s // 24)
            _draw(label, colour, "rect", ((cx - half - 2 * arm, shoulder + 1), (cx - half, hip - 2)),
                  lab, shirt)
            _draw(label, colour, "rect", ((cx + half, shoulder + 1), (cx + half + 2 * arm, hip - 2)),
                  lab, shirt)
    _draw(label, colour, "circle", (head_c, head_r, -1), lab, skin)


def _vehicle_side(label: np.ndarray, colour: np.ndarray, rng: np.random.Generator, motor: bool) -> None:
    """A bicycle or motorcycle seen from the side with its rider (rider label above, vehicle below)."""
    s = SPRITE
    lab = TRAIN_ID["motorcycle"] if motor else TRAIN_ID["bicycle"]
    frame_rgb = _random_colour(rng)
    wheel_r = int(0.17 * s) if not motor else int(0.16 * s)
    y_w = s - 1 - wheel_r
    xa, xb = int(0.2 * s), int(0.8 * s)
    thick = max(2, s // 20) if not motor else -1
    tyre = (0.05, 0.05, 0.05)
    _draw(label, colour, "circle", ((xa, y_w), wheel_r, thick), lab, tyre)
    _draw(label, colour, "circle", ((xb, y_w), wheel_r, thick), lab, tyre)
    if motor:
        _draw(label, colour, "poly", ([(xa, y_w - wheel_r), (xb, y_w - wheel_r),
                                       (int(0.7 * s), int(0.45 * s)), (int(0.3 * s), int(0.5 * s))],),
              lab, frame_rgb)
    else:
        seat = (int(0.4 * s), int(0.55 * s))
        _draw(label, colour, "line", ((xa, y_w), seat, 2), lab, frame_rgb)
        _draw(label, colour, "line", (seat, (int(0.55 * s), y_w), 2), lab, frame_rgb)
        _draw(label, colour, "line", (((int(0.55 * s), y_w)), (xb, y_w), 2), lab, frame_rgb)
        _draw(label, colour, "line", (((int(0.7 * s), int(0.5 * s))), (xb, y_w), 2), lab, frame_rgb)
    rider = np.full_like(label, TRANSPARENT)
    rider_rgb = np.zeros_like(colour)
    _person(rider, rider_rgb, rng, side=True, lab=TRAIN_ID["rider"], top=0, bottom=int(0.62 * s), seated=True)
    # legs down to the pedal, arms to the handlebar
    pants = _random_colour(rng, dark=True)
    _draw(rider, rider_rgb, "line", ((s // 2, int(0.55 * s)), (int(0.55 * s), int(0.85 * s)), 3),
          TRAIN_ID["rider"], pants)
    _draw(rider, rider_rgb, "line", ((s // 2, int(0.22 * s)), (int(0.72 * s), int(0.45 * s)), 2),
          TRAIN_ID["rider"], pants)
    on = rider != TRANSPARENT
    label[on] = rider[on]
    colour[on] = rider_rgb[on]


def _vehicle_back(label: np.ndarray, colour: np.ndarray, rng: np.random.Generator, motor: bool) -> None:
    """A bicycle or motorcycle seen from behind with its rider."""
    s = SPRITE
    lab = TRAIN_ID["motorcycle"] if motor else TRAIN_ID["bicycle"]
    half = int(0.06 * s) if not motor else int(0.14 * s)
    tyre = (0.05, 0.05, 0.05)
    _draw(label, colour, "rect", ((s // 2 - half, int(0.6 * s)), (s // 2 + half, s - 1)), lab,
          tyre if not motor else _random_colour(rng))
    _person(label, colour, rng, side=False, lab=TRAIN_ID["rider"], top=0, bottom=int(0.62 * s), seated=True)
    leg = max(2, s // 18)
    pants = _random_colour(rng, dark=True)
    _draw(label, colour, "rect", ((s // 2 - 3 * leg, int(0.55 * s)), (s // 2 - leg, int(0.85 * s))),
          TRAIN_ID["rider"], pants)
    _draw(label, colour, "rect", ((s // 2 + leg, int(0.55 * s)), (s // 2 + 3 * leg, int(0.85 * s))),
          TRAIN_ID["rider"], pants)


def sprite_atlas(rng: np.random.Generator, per_kind: int = 4) -> SpriteAtlas:
    """`per_kind` colour variants of every kind in SPRITE_KINDS, in that order (index kind*per_kind + i)."""
    labels, colours = [], []
    for kind in SPRITE_KINDS:
        for _ in range(per_kind):
            label = np.full((SPRITE, SPRITE), TRANSPARENT, np.uint8)
            colour = np.zeros((SPRITE, SPRITE, 3), np.float32)
            if kind.startswith("person"):
                _person(label, colour, rng, side=kind.endswith("side"), lab=TRAIN_ID["person"])
            elif kind.endswith("side"):
                _vehicle_side(label, colour, rng, motor=kind.startswith("motor"))
            else:
                _vehicle_back(label, colour, rng, motor=kind.startswith("motor"))
            labels.append(label)
            colours.append(colour)
    return SpriteAtlas(labels=np.stack(labels), colors=np.stack(colours))
