"""The procedural street: world layout, moving objects and the camera path of one sequence.

World coordinates are metres: x to the right of the street direction, y up, z along the street
(the camera drives towards +z); the ground is the plane y = 0. Camera coordinates follow OpenCV:
x right, y down, z forward (the viewing direction); pixel (row i, column j) has its centre at
image coordinates (x, y) = (j, i), so flow vectors are differences of pixel indices.

Everything in the world is one of three primitives, all axis-aligned, which keeps ray casting
exact and cheap: boxes (buildings, cars, poles, ...), spheres (tree crowns) and billboards (vertical
planes z = const carrying a sprite: people, riders). Moving objects only translate; their
translation at every frame is `Scene.offsets[prim, t + 1]` (frames t = -1 .. frames, so that the
first and last written frames have both flows). Time unit: one frame at 17 Hz (Cityscapes' rate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dvsnet.data.labels import TRAIN_ID
from dvsnet.data.synthetic.textures import SPRITE_KINDS, SpriteAtlas, sprite_atlas

FPS = 17.0
BOX, SPHERE, BILLBOARD = 1, 2, 3
# materials: how the renderer textures a primitive
PLAIN, FACADE, SPRITE_MAT, FENCE, FOLIAGE, VEHICLE, SIGN, GLASS = range(8)
SPRITES_PER_KIND = 4


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels; principal point in pixel-index coordinates."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def for_size(cls, size: tuple[int, int], focal_ratio: float = 1.1045) -> Intrinsics:
        """Cityscapes-like camera for an (H, W) image: focal = focal_ratio * W (2262 px at 2048)."""
        height, width = size
        focal = focal_ratio * width
        return cls(fx=focal, fy=focal, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)

    def matrix(self) -> np.ndarray:
        """(3, 3) float64 K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)


@dataclass
class Ground:
    """The ground plane's layout: road, lane markings, sidewalks, terrain strips, cross streets."""

    road_half: float               # road spans |x| < road_half (m)
    sidewalk: float                # sidewalk width beyond the road (m)
    markings: np.ndarray           # (M, 3): x centre, half width, dash period (0 = solid) in m
    cross: np.ndarray              # (C, 2): cross-street centre z and half width (m)
    cell_z0: float                 # z of the first 1 m cell of `outer_terrain`
    outer_terrain: np.ndarray      # (2, cells) bool: left/right band beyond the sidewalk is terrain
    verge: np.ndarray              # (2, cells) bool: a 1 m grass verge between road and sidewalk
    colors: np.ndarray             # (5, 3) road, sidewalk, terrain, marking, curb-ish dark


@dataclass
class Look:
    """Lighting and camera appearance of a sequence."""

    time_of_day: str               # one of TIMES_OF_DAY
    sun: np.ndarray                # (3,) unit vector towards the sun
    sun_rgb: np.ndarray            # (3,) direct light
    ambient_rgb: np.ndarray        # (3,) ambient light
    sky_zenith: np.ndarray         # (3,)
    sky_horizon: np.ndarray        # (3,)
    haze_rgb: np.ndarray           # (3,)
    fog_distance: float            # m; contrast halves at ~0.7 of it
    clouds: float                  # cloud contrast in [0, 1]
    exposure: np.ndarray           # (T,) gain per frame
    white_balance: np.ndarray      # (T, 3) colour-temperature gains per frame
    noise_sigma: float             # sensor noise, in 8-bit levels
    shutter: float                 # motion blur: fraction of the frame interval the shutter is open


@dataclass
class Scene:
    """One sequence's world and camera. Frame t lives at time index t + 1 of every (T, ...) array."""

    frames: int
    size: tuple[int, int]
    intrinsics: Intrinsics
    cam_pos: np.ndarray            # (T, 3) camera centre in world metres
    cam_rot: np.ndarray            # (T, 3, 3) camera-to-world rotation (columns: camera x, y, z axes)
    kind: np.ndarray               # (N,) BOX | SPHERE | BILLBOARD
    lo: np.ndarray                 # (N, 3) axis-aligned bounds at frame 0 (sphere: centre -+ radius)
    hi: np.ndarray                 # (N, 3)
    radius: np.ndarray             # (N,) spheres only
    label: np.ndarray              # (N,) uint8 train id (billboards: taken from the sprite)
    color: np.ndarray              # (N, 3) float32 base colour in [0, 1]
    material: np.ndarray           # (N,) PLAIN | FACADE | ...
    tex: np.ndarray                # (N, 4) texture amplitude, scale (texels per m), u and v offsets
    pattern: np.ndarray            # (N, 4) material parameters (e.g. window spacing, floor height)
    sprite: np.ndarray             # (N,) index into `sprites` (billboards), else -1
    offsets: np.ndarray            # (N, T, 3) translation of each primitive at each time
    ground: Ground
    look: Look
    sprites: SpriteAtlas
    params: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.kind)


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) camera-to-world rotation; radians; yaw > 0 turns right (+x), pitch > 0 looks up."""
    flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
    return _rot_y(yaw) @ _rot_x(-pitch) @ _rot_z(roll) @ flip


class _Builder:
    """Accumulates primitives while the street is laid out."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.rows: list[tuple] = []
        self.motions: list[np.ndarray | None] = []

    def add(self, kind: int, lo, hi, label: int, color, material: int = PLAIN, tex=(0.08, 8.0),
            pattern=(0, 0, 0, 0), sprite: int = -1, radius: float = 0.0, motion: np.ndarray | None = None,
            rng: np.random.Generator | None = None) -> None:
        ou, ov = (rng.uniform(0, 256, 2) if rng is not None else (0.0, 0.0))
        self.rows.append((kind, np.asarray(lo, float), np.asarray(hi, float), radius, label,
                          np.clip(np.asarray(color, float), 0, 1), material, (tex[0], tex[1], ou, ov),
                          pattern, sprite))
        self.motions.append(motion)


def _speed_profile(rng: np.random.Generator, times: int, speed: float, stop_prob: float = 0.2,
                   start_prob: float = 0.1) -> np.ndarray:
    """(times,) speed per frame (m/frame) from a constant cruise, or stopping, or starting."""
    profile = np.full(times, speed)
    mode = rng.random()
    if mode < stop_prob:
        t0 = rng.integers(0, max(1, times - 4))
        ramp = rng.integers(4, 16)
        profile = speed * np.clip(1 - (np.arange(times) - t0) / ramp, 0, 1)
    elif mode < stop_prob + start_prob:
        t0 = rng.integers(0, max(1, times - 4))
        ramp = rng.integers(6, 20)
        profile = speed * np.clip((np.arange(times) - t0) / ramp, 0, 1)
    return profile


def _offsets(velocity_per_time: np.ndarray) -> np.ndarray:
    """(T, 3) per-frame displacement (movement from time k to k+1) -> (T, 3) offsets, 0 at frame 0."""
    steps = np.concatenate([np.zeros((1, 3)), np.cumsum(velocity_per_time[:-1], axis=0)])
    return steps - steps[1]  # time index 1 is frame 0


def _camera_path(rng: np.random.Generator, times: int, lane_x: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Speed class, turning, shake: (T, 3) positions, (T, 3, 3) rotations, and a summary."""
    speed_class = rng.choice(["still", "slow", "medium", "fast"], p=[0.1, 0.3, 0.35, 0.25])
    speed_ms = {"still": 0.0, "slow": rng.uniform(2, 5), "medium": rng.uniform(6, 10),
                "fast": rng.uniform(11, 17)}[speed_class]
    speed = _speed_profile(rng, times, speed_ms / FPS, stop_prob=0.15, start_prob=0.1 if speed_ms else 0)
    if speed_class == "still" and rng.random() < 0.5:
        speed = _speed_profile(rng, times, rng.uniform(2, 5) / FPS, stop_prob=0.0, start_prob=1.0)
    turn = rng.random() < 0.3
    yaw_rate = np.deg2rad(rng.uniform(0.5, 1.2) * rng.choice([-1, 1]) if turn else rng.uniform(-0.25, 0.25))
    yaw0 = np.deg2rad(rng.normal(0, 3))
    t = np.arange(times, dtype=float)
    shake = np.clip(speed_ms / 10, 0.15, 1.5)
    phase = rng.uniform(0, 2 * np.pi, 6)
    yaw = yaw0 + yaw_rate * (t - 1) + np.deg2rad(0.15 * shake) * np.sin(0.9 * t + phase[0])
    pitch = np.deg2rad(rng.normal(0, 1) + 0.4 * shake * np.sin(1.7 * t + phase[1])
                       + 0.2 * shake * np.sin(3.1 * t + phase[2]))
    roll = np.deg2rad(rng.normal(0, 0.5) + 0.3 * shake * np.sin(1.3 * t + phase[3]))
    height = rng.uniform(1.25, 1.6) + 0.02 * shake * np.sin(2.3 * t + phase[4])
    z = np.concatenate([[0.0], np.cumsum(speed[:-1] * np.cos(yaw[:-1]))])
    x = np.concatenate([[0.0], np.cumsum(speed[:-1] * np.sin(yaw[:-1]))])
    z -= z[1]
    x = lane_x + np.clip(x - x[1], -0.6, 0.6)  # the car stays in its lane; the view still turns
    pos = np.stack([x, height, z], axis=1)
    rot = np.stack([camera_rotation(yaw[i], pitch[i], roll[i]) for i in range(times)])
    summary = {"speed_class": str(speed_class), "speed_m_s": round(float(speed_ms), 2),
               "turning": bool(turn), "yaw_rate_deg_per_frame": round(float(np.rad2deg(yaw_rate)), 3)}
    return pos, rot, summary


FACADE_COLOURS = np.array([
    [0.76, 0.70, 0.60], [0.62, 0.35, 0.28], [0.55, 0.55, 0.56], [0.85, 0.84, 0.80], [0.50, 0.42, 0.35],
    [0.70, 0.62, 0.45], [0.60, 0.66, 0.70], [0.82, 0.72, 0.62], [0.40, 0.40, 0.42], [0.75, 0.55, 0.45],
])
CAR_COLOURS = np.array([
    [0.85, 0.85, 0.85], [0.1, 0.1, 0.1], [0.55, 0.56, 0.58], [0.6, 0.1, 0.1], [0.1, 0.2, 0.45],
    [0.9, 0.9, 0.92], [0.25, 0.3, 0.3], [0.8, 0.65, 0.2], [0.2, 0.35, 0.25], [0.4, 0.4, 0.45],
])


def _add_car(b: _Builder, rng: np.random.Generator, x: float, z: float, length: float, motion,
             heavy: str = "", along_x: bool = False) -> None:
    """A car (body, cabin, dark underbody) or, if heavy is 'truck'/'bus', a large vehicle, centred at
    (x, z)."""
    colour = CAR_COLOURS[rng.integers(len(CAR_COLOURS))] * rng.uniform(0.85, 1.1)
    if heavy:
        width, height = rng.uniform(2.3, 2.55), rng.uniform(2.9, 3.5)
        label = TRAIN_ID[heavy]
        if heavy == "bus":
            colour = np.array([[0.8, 0.75, 0.1], [0.85, 0.85, 0.85], [0.7, 0.15, 0.1], [0.2, 0.4, 0.7]])[
                rng.integers(4)]
    else:
        width, height = rng.uniform(1.7, 1.9), rng.uniform(1.35, 1.6)
        label = TRAIN_ID["car"]
    hw, hl = (length / 2, width / 2) if along_x else (width / 2, length / 2)
    under = 0.3 if not heavy else 0.45
    b.add(BOX, (x - hw + 0.15, 0.0, z - hl + 0.3), (x + hw - 0.15, under, z + hl - 0.3), label,
          (0.05, 0.05, 0.05), PLAIN, motion=motion, rng=rng)
    if heavy:
        band = (1.2, height - 0.5) if heavy == "bus" else (height - 1.1, height - 0.4)
        b.add(BOX, (x - hw, under, z - hl), (x + hw, height, z + hl), label, colour, VEHICLE,
              pattern=(under, band[0], band[1], 1.0 if heavy == "bus" else 0.0), motion=motion, rng=rng)
        if heavy == "truck":  # cab in front of the box
            cab = 2.2
            if along_x:
                b.add(BOX, (x + hw, under, z - hl), (x + hw + cab, height * 0.8, z + hl), label, colour * 0.8,
                      VEHICLE, pattern=(under, height * 0.45, height * 0.75, 0), motion=motion, rng=rng)
            else:
                b.add(BOX, (x - hw, under, z + hl), (x + hw, height * 0.8, z + hl + cab), label, colour * 0.8,
                      VEHICLE, pattern=(under, height * 0.45, height * 0.75, 0), motion=motion, rng=rng)
        return
    body_top = under + rng.uniform(0.55, 0.7)
    b.add(BOX, (x - hw, under, z - hl), (x + hw, body_top, z + hl), label, colour, VEHICLE,
          pattern=(under, 10, 10, 0), motion=motion, rng=rng)
    inset_l = length * rng.uniform(0.2, 0.3)
    if along_x:
        lo, hi = (x - hw + inset_l, body_top, z - hl + 0.08), (x + hw - inset_l * 0.6, height, z + hl - 0.08)
    else:
        lo, hi = (x - hw + 0.08, body_top, z - hl + inset_l * 0.6), (x + hw - 0.08, height, z + hl - inset_l)
    b.add(BOX, lo, hi, label, colour, VEHICLE, pattern=(body_top, body_top + 0.05, height - 0.05, 0),
          motion=motion, rng=rng)


def _motion_along(times: int, speed: np.ndarray, axis: int, direction: float) -> np.ndarray:
    vel = np.zeros((times, 3))
    vel[:, axis] = direction * speed
    return _offsets(vel)


def _add_tree(b: _Builder, rng: np.random.Generator, x: float, z: float) -> None:
    trunk_h = rng.uniform(1.8, 3.2)
    veg = TRAIN_ID["vegetation"]
    b.add(BOX, (x - 0.15, 0, z - 0.15), (x + 0.15, trunk_h + 0.5, z + 0.15), veg, (0.3, 0.22, 0.15),
          PLAIN, tex=(0.15, 20.0), rng=rng)
    green = np.array([0.22, 0.38, 0.12]) * rng.uniform(0.7, 1.3) + rng.normal(0, 0.03, 3)
    for _ in range(rng.integers(2, 4)):
        r = rng.uniform(1.0, 2.2)
        c = np.array([x + rng.normal(0, 0.5), trunk_h + r * rng.uniform(0.6, 1.0), z + rng.normal(0, 0.6)])
        b.add(SPHERE, c - r, c + r, veg, green, FOLIAGE, tex=(0.35, 14.0), radius=r, rng=rng)


def _add_pole(b: _Builder, rng: np.random.Generator, x: float, z: float, side: int, kind: str,
              road_half: float) -> None:
    pole = TRAIN_ID["pole"]
    grey = np.array([0.45, 0.46, 0.47]) * rng.uniform(0.7, 1.2)
    if kind == "light":
        h = rng.uniform(6, 9)
        b.add(BOX, (x - 0.1, 0, z - 0.1), (x + 0.1, h, z + 0.1), pole, grey, rng=rng)
        arm = rng.uniform(1.0, 2.5)
        x_in = x - side * arm
        b.add(BOX, (min(x, x_in), h - 0.15, z - 0.06), (max(x, x_in), h, z + 0.06), pole, grey, rng=rng)
    elif kind == "sign":
        h = rng.uniform(2.2, 3.0)
        b.add(BOX, (x - 0.04, 0, z - 0.04), (x + 0.04, h, z + 0.04), pole, grey, rng=rng)
        size = rng.uniform(0.5, 0.8)
        colour = np.array([[0.8, 0.1, 0.1], [0.1, 0.25, 0.7], [0.9, 0.9, 0.9],
                           [0.95, 0.75, 0.1]])[rng.integers(4)]
        b.add(BOX, (x - size / 2, h - size, z - 0.08), (x + size / 2, h, z - 0.04), TRAIN_ID["traffic sign"],
              colour, SIGN, tex=(0.05, 8.0), rng=rng)
    elif kind == "traffic_light":
        h = rng.uniform(2.8, 3.4)
        b.add(BOX, (x - 0.07, 0, z - 0.07), (x + 0.07, h, z + 0.07), pole, grey * 0.6, rng=rng)
        b.add(BOX, (x - 0.17, h, z - 0.25), (x + 0.17, h + 0.9, z + 0.05), TRAIN_ID["traffic light"],
              (0.12, 0.12, 0.1), SIGN, pattern=(1, 0, 0, 0), rng=rng)
        if rng.random() < 0.5:  # mast arm over the road with a second light
            reach = rng.uniform(3, max(3.5, road_half))
            x_in = x - side * reach
            b.add(BOX, (x - 0.07, h, z - 0.07), (x + 0.07, h + 2.6, z + 0.07), pole, grey * 0.6, rng=rng)
            b.add(BOX, (min(x, x_in), h + 2.4, z - 0.06), (max(x, x_in), h + 2.55, z + 0.06), pole,
                  grey * 0.6, rng=rng)
            b.add(BOX, (x_in - 0.17, h + 1.4, z - 0.25), (x_in + 0.17, h + 2.4, z + 0.05),
                  TRAIN_ID["traffic light"], (0.12, 0.12, 0.1), SIGN, pattern=(1, 0, 0, 0), rng=rng)


def _sprite(rng: np.random.Generator, kind: str) -> int:
    return SPRITE_KINDS.index(kind) * SPRITES_PER_KIND + int(rng.integers(SPRITES_PER_KIND))


def build_scene(rng: np.random.Generator, frames: int, size: tuple[int, int],
                intrinsics: Intrinsics | None = None) -> Scene:
    """Lay out a street, its traffic and a camera path for `frames` frames of an (H, W) video."""
    times = frames + 2
    b = _Builder(times)
    lanes = int(rng.choice([1, 2], p=[0.6, 0.4]))
    parking = bool(rng.random() < 0.6)
    road_half = lanes * 3.5 + (2.3 if parking else 0.0)
    sidewalk = rng.uniform(2.5, 5.0)
    camera_lane = 1.75 + 3.5 * int(rng.integers(lanes))
    cam_pos, cam_rot, cam_summary = _camera_path(rng, times, camera_lane)
    z_lo, z_hi = float(cam_pos[:, 2].min()) - 40.0, float(cam_pos[:, 2].max()) + 230.0
    cam_z_lo, cam_z_hi = float(cam_pos[:, 2].min()), float(cam_pos[:, 2].max())
    density = float(rng.choice([0.3, 0.7, 1.2], p=[0.3, 0.45, 0.25]))  # traffic per 10 m per lane

    # markings: centre line (solid or dashed), lane separators (dashed), parking lane edges (solid)
    marks = [(0.0, 0.07, 0.0 if rng.random() < 0.4 else 9.0)]
    for side in (-1, 1):
        for k in range(1, lanes):
            marks.append((side * 3.5 * k, 0.07, 9.0))
        if parking:
            marks.append((side * 3.5 * lanes, 0.06, 0.0))
    cross = []
    z = float(z_lo + rng.uniform(10, 120))
    while z < z_hi:
        if rng.random() < 0.6:
            cross.append((z, rng.uniform(5, 8)))
        z += rng.uniform(70, 140)
    cross_arr = np.array(cross, float).reshape(-1, 2)

    def in_cross(z0: float, z1: float, margin: float = 0.0) -> bool:
        return any(z1 > zc - hw - sidewalk - margin and z0 < zc + hw + sidewalk + margin for zc, hw in cross)

    cells = int(z_hi - z_lo) + 2
    outer_terrain = np.zeros((2, cells), bool)
    verge = np.zeros((2, cells), bool)
    for s in range(2):
        z = 0
        while z < cells:
            run = int(rng.integers(8, 40))
            if rng.random() < 0.3:
                verge[s, z:z + run] = True
            z += run
    road_rgb = np.array([0.33, 0.33, 0.35]) * rng.uniform(0.75, 1.2)
    walk_rgb = np.array([0.62, 0.58, 0.56]) * rng.uniform(0.8, 1.15)
    terrain_rgb = np.array([0.42, 0.5, 0.25]) * rng.uniform(0.75, 1.2)
    colors = np.stack([road_rgb, walk_rgb, terrain_rgb, np.array([0.88, 0.88, 0.86]), road_rgb * 0.6])

    # buildings, with what fills the gaps between them, per side
    for s_idx, side in enumerate((-1, 1)):
        z = z_lo
        while z < z_hi:
            length = rng.uniform(8, 28)
            z0, z1 = z, z + length
            if in_cross(z0, z1):
                z = z1 + 1.0
                continue
            front = road_half + sidewalk
            if rng.random() < 0.22:  # gap: wall, fence, hedge or open terrain, maybe trees
                gap_kind = rng.choice(["wall", "fence", "hedge", "open"], p=[0.3, 0.3, 0.2, 0.2])
                c0, c1 = int(z0 - z_lo), int(z1 - z_lo) + 1
                outer_terrain[s_idx, c0:c1] = True
                x_in = side * (front + 0.2)
                x_out = side * (front + 0.45)
                if gap_kind == "wall":
                    b.add(BOX, (min(x_in, x_out), 0, z0), (max(x_in, x_out), rng.uniform(1.0, 2.6), z1),
                          TRAIN_ID["wall"], np.array([0.6, 0.58, 0.52]) * rng.uniform(0.7, 1.2), PLAIN,
                          tex=(0.15, 10.0), rng=rng)
                elif gap_kind == "fence":
                    b.add(BOX, (min(x_in, x_out), 0, z0), (max(x_in, x_out), rng.uniform(1.0, 2.0), z1),
                          TRAIN_ID["fence"], np.array([0.45, 0.42, 0.38]) * rng.uniform(0.7, 1.3), FENCE,
                          pattern=(rng.uniform(0.1, 0.25), 0, 0, 0), rng=rng)
                elif gap_kind == "hedge":
                    b.add(BOX, (min(x_in, x_out + side * 0.6), 0, z0),
                          (max(x_in, x_out + side * 0.6), rng.uniform(0.8, 1.8), z1), TRAIN_ID["vegetation"],
                          (0.2, 0.35, 0.12), FOLIAGE, tex=(0.4, 12.0), rng=rng)
                for zt in np.arange(z0 + 3, z1 - 2, rng.uniform(5, 9)):
                    if rng.random() < 0.6:
                        _add_tree(b, rng, side * (front + rng.uniform(2.5, 7)), zt)
                z = z1
                continue
            setback = 0.0 if rng.random() < 0.5 else rng.uniform(0.8, 6.0)
            if setback > 0 and rng.random() < 0.6:
                c0, c1 = int(z0 - z_lo), int(z1 - z_lo) + 1
                outer_terrain[s_idx, c0:c1] = True
                if setback > 2 and rng.random() < 0.35:
                    b.add(BOX, (min(side * (front + 0.3), side * (front + 1.0)), 0, z0 + 0.5),
                          (max(side * (front + 0.3), side * (front + 1.0)), rng.uniform(0.7, 1.4), z1 - 0.5),
                          TRAIN_ID["vegetation"], (0.2, 0.34, 0.12), FOLIAGE, tex=(0.4, 12.0), rng=rng)
            height = rng.uniform(6, 32) if rng.random() < 0.85 else rng.uniform(32, 50)
            depth = rng.uniform(10, 20)
            x_near, x_far = side * (front + setback), side * (front + setback + depth)
            colour = FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))] * rng.uniform(0.75, 1.15)
            floor = rng.uniform(2.8, 3.6)
            spacing = rng.uniform(2.0, 3.6)
            b.add(BOX, (min(x_near, x_far), 0, z0), (max(x_near, x_far), height, z1), TRAIN_ID["building"],
                  colour, FACADE, tex=(rng.uniform(0.04, 0.12), rng.uniform(4, 12)),
                  pattern=(spacing, floor, rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6)), rng=rng)
            z = z1 + (rng.uniform(0.5, 3) if rng.random() < 0.3 else 0.0)

        # street furniture along the curb
        curb_x = side * (road_half + 0.5)
        z = z_lo + rng.uniform(0, 20)
        light_step = rng.uniform(22, 38)
        while z < z_hi:
            if not in_cross(z, z, margin=-sidewalk):
                _add_pole(b, rng, curb_x, z, side, "light", road_half)
            z += light_step
        z = z_lo + rng.uniform(0, 30)
        while z < z_hi:
            if not in_cross(z, z):
                roll = rng.random()
                if roll < 0.35:
                    _add_pole(b, rng, curb_x + side * rng.uniform(0, 0.4), z, side, "sign", road_half)
                elif roll < 0.8:
                    _add_tree(b, rng, side * (road_half + rng.uniform(0.8, 1.4)), z)
            z += rng.uniform(6, 20)

    # intersections: traffic lights on the corners, crosswalks, crossing traffic
    for zc, hw in cross:
        for side in (-1, 1):
            for zz in (zc - hw - 1.0, zc + hw + 1.0):
                if rng.random() < 0.8:
                    _add_pole(b, rng, side * (road_half + 0.6), zz, side, "traffic_light", road_half)
    marks_arr = np.array(marks, float).reshape(-1, 3)

    # parked cars
    if parking:
        for side in (-1, 1):
            z = z_lo + rng.uniform(0, 8)
            while z < z_hi:
                length = rng.uniform(3.9, 4.9)
                if rng.random() < 0.7 * min(1.0, density + 0.3) and not in_cross(z - 3, z + 3):
                    heavy = "truck" if rng.random() < 0.06 else ""
                    _add_car(b, rng, side * (road_half - 1.15), z, length if not heavy else rng.uniform(6, 8),
                             None, heavy=heavy)
                z += length + rng.uniform(0.8, 6.0) + (0 if rng.random() < 0.7 else rng.uniform(5, 25))

    # moving traffic in every lane; the camera's own lane only has a lead vehicle that keeps its distance
    cam_speed_max = float(np.max(np.abs(np.diff(cam_pos[:, 2])))) if times > 1 else 0.0
    for side in (-1, 1):
        for k in range(lanes):
            x_lane = side * (1.75 + 3.5 * k)
            direction = 1.0 if side > 0 else -1.0
            if abs(x_lane - camera_lane) < 0.1:
                gap = rng.uniform(10, 35)
                speed = np.full(times, cam_speed_max + rng.uniform(0.05, 0.6))
                heavy = str(rng.choice(["", "truck", "bus"], p=[0.75, 0.1, 0.15]))
                length = rng.uniform(4, 4.8) if not heavy else rng.uniform(8, 12)
                _add_car(b, rng, x_lane, cam_pos[1, 2] + gap + length / 2,
                         length, _motion_along(times, speed, 2, 1.0), heavy=heavy)
                continue
            z = z_lo + rng.uniform(0, 15)
            while z < z_hi:
                z += rng.exponential(10 / density) + 6
                heavy = str(rng.choice(["", "truck", "bus"], p=[0.85, 0.07, 0.08]))
                length = rng.uniform(3.9, 4.9) if not heavy else rng.uniform(7, 12)
                speed = _speed_profile(rng, times, rng.uniform(2, 15) / FPS)
                if rng.random() < 0.15:
                    speed[:] = 0.0  # waiting in traffic
                _add_car(b, rng, x_lane + rng.normal(0, 0.15), z, length,
                         _motion_along(times, speed, 2, direction), heavy=heavy)
                if rng.random() < 0.15:  # a motorcyclist or cyclist at the lane edge
                    motor = rng.random() < 0.5
                    spd = np.full(times, rng.uniform(3, 9 if motor else 6) / FPS)
                    xr = x_lane + side * 1.2
                    sid = _sprite(rng, "motorcycle_back" if motor else "bicycle_back")
                    zr = z + rng.uniform(6, 12)
                    b.add(BILLBOARD, (xr - 0.35, 0, zr), (xr + 0.35, 1.75, zr), 255, (1, 1, 1), SPRITE_MAT,
                          sprite=sid, motion=_motion_along(times, spd, 2, direction), rng=rng)

    # pedestrians on the sidewalks (walking or standing) and cyclists crossing / riding
    def camera_clear(zz: float, margin: float = 8.0) -> bool:
        return zz < cam_z_lo - margin or zz > cam_z_hi + margin

    for side in (-1, 1):
        z = z_lo
        while z < z_hi:
            z += rng.exponential(12 / (density + 0.2))
            x = side * (road_half + rng.uniform(0.6, sidewalk - 0.3))
            walking = rng.random() < 0.7
            spd = np.full(times, rng.uniform(0.8, 1.8) / FPS if walking else 0.0)
            direction = float(rng.choice([-1.0, 1.0]))
            h = rng.uniform(1.55, 1.95)
            sid = _sprite(rng, "person_front")
            b.add(BILLBOARD, (x - 0.3 * h / 1.75, 0, z), (x + 0.3 * h / 1.75, h, z), 255, (1, 1, 1),
                  SPRITE_MAT, sprite=sid, motion=_motion_along(times, spd, 2, direction), rng=rng)
            if rng.random() < 0.2:  # a group
                b.add(BILLBOARD, (x - 0.3 + side * 0.6, 0, z + 0.4),
                      (x + 0.3 + side * 0.6, h * 0.97, z + 0.4), 255, (1, 1, 1), SPRITE_MAT,
                      sprite=_sprite(rng, "person_front"),
                      motion=_motion_along(times, spd, 2, direction), rng=rng)
    crossing_zs = [(zc + rng.choice([-1, 1]) * (hw + 1.5)) for zc, hw in cross]
    if rng.random() < 0.5:
        crossing_zs.append(float(cam_z_hi + rng.uniform(15, 60)))  # someone crossing mid-block
    for zz in crossing_zs:
        n = int(rng.integers(1, 5))
        for _ in range(n):
            kind = rng.choice(["person_side", "bicycle_side", "motorcycle_side"], p=[0.7, 0.2, 0.1])
            spd_ms = {"person_side": rng.uniform(0.9, 1.8), "bicycle_side": rng.uniform(3, 6),
                      "motorcycle_side": rng.uniform(4, 8)}[kind]
            direction = float(rng.choice([-1.0, 1.0]))
            travel = spd_ms / FPS * times
            clear = camera_clear(zz)
            x0 = rng.uniform(-road_half - sidewalk, road_half + sidewalk)
            if not clear:  # never walk through the camera: stay on the far side of the lane
                x0 = side_x = float(rng.choice([-1, 1])) * (road_half + rng.uniform(0.5, sidewalk))
                direction = -np.sign(side_x) if abs(side_x) > travel + 3 else np.sign(side_x)
            w, h = (0.6, rng.uniform(1.55, 1.9)) if kind == "person_side" else (1.8, rng.uniform(1.7, 1.9))
            zp = zz + rng.uniform(-1.2, 1.2)
            b.add(BILLBOARD, (x0 - w / 2, 0, zp), (x0 + w / 2, h, zp), 255, (1, 1, 1), SPRITE_MAT,
                  sprite=_sprite(rng, str(kind)), motion=_motion_along(times, np.full(times, spd_ms / FPS), 0,
                                                                       direction), rng=rng)
    # cross-street traffic: waits at the line when the camera passes, else crosses
    for zc, hw in cross:
        for lane_z, direction in ((zc - hw / 2, 1.0), (zc + hw / 2, -1.0)):
            if rng.random() > 0.6 * min(1.0, density + 0.3):
                continue
            clear = camera_clear(zc, margin=hw + 6)
            length = rng.uniform(3.9, 4.8)
            spd = rng.uniform(3, 10) / FPS
            if clear:
                x0 = -direction * rng.uniform(road_half + 5, road_half + 40)
                speed = _speed_profile(rng, times, spd, stop_prob=0.1, start_prob=0.1)
            else:
                x0 = -direction * (road_half + sidewalk + length / 2 + rng.uniform(0.5, 3) + spd * times)
                speed = np.full(times, spd)
                speed = _speed_profile(rng, times, spd, stop_prob=1.0, start_prob=0.0)
                travel = float(np.sum(speed))
                x0 = -direction * (road_half + 1 + length / 2 + travel)
            _add_car(b, rng, x0, lane_z, length, _motion_along(times, speed, 0, direction), along_x=True)

    look = _look(rng, times)
    kinds = np.array([r[0] for r in b.rows], np.int8)
    motions = np.stack([m if m is not None else np.zeros((times, 3)) for m in b.motions]).astype(np.float32)
    atlas = sprite_atlas(rng, SPRITES_PER_KIND)
    ground = Ground(road_half=road_half, sidewalk=sidewalk, markings=marks_arr, cross=cross_arr, cell_z0=z_lo,
                    outer_terrain=outer_terrain, verge=verge, colors=colors.astype(np.float32))
    params = {"lanes": lanes, "parking": parking, "road_half_width_m": round(road_half, 2),
              "sidewalk_m": round(float(sidewalk), 2), "traffic_density": density,
              "cross_streets": len(cross), "primitives": len(b.rows), **cam_summary, **look_summary(look)}
    return Scene(
        frames=frames, size=size, intrinsics=intrinsics or Intrinsics.for_size(size),
        cam_pos=cam_pos.astype(np.float64), cam_rot=cam_rot.astype(np.float64), kind=kinds,
        lo=np.array([r[1] for r in b.rows], np.float32), hi=np.array([r[2] for r in b.rows], np.float32),
        radius=np.array([r[3] for r in b.rows], np.float32), label=np.array([r[4] for r in b.rows], np.uint8),
        color=np.array([r[5] for r in b.rows], np.float32),
        material=np.array([r[6] for r in b.rows], np.int8),
        tex=np.array([r[7] for r in b.rows], np.float32),
        pattern=np.array([r[8] for r in b.rows], np.float32),
        sprite=np.array([r[9] for r in b.rows], np.int16), offsets=motions, ground=ground, look=look,
        sprites=atlas, params=params)


TIMES_OF_DAY = ("noon", "afternoon", "morning", "dusk", "overcast")


def _look(rng: np.random.Generator, times: int) -> Look:
    tod = str(rng.choice(TIMES_OF_DAY, p=[0.3, 0.25, 0.2, 0.1, 0.15]))
    elevation = {"noon": 60, "afternoon": 35, "morning": 25, "dusk": 8, "overcast": 45}[tod]
    azimuth = rng.uniform(0, 2 * np.pi)
    el = np.deg2rad(elevation + rng.normal(0, 5))
    sun = np.array([np.cos(el) * np.sin(azimuth), np.sin(el), np.cos(el) * np.cos(azimuth)])
    warm = {"noon": [1.0, 0.98, 0.92], "afternoon": [1.0, 0.93, 0.8], "morning": [1.0, 0.95, 0.85],
            "dusk": [1.0, 0.7, 0.45], "overcast": [0.9, 0.92, 0.95]}[tod]
    strength = {"noon": 0.75, "afternoon": 0.65, "morning": 0.55, "dusk": 0.45, "overcast": 0.15}[tod]
    ambient = {"noon": 0.5, "afternoon": 0.5, "morning": 0.5, "dusk": 0.45, "overcast": 0.85}[tod]
    zenith = {"noon": [0.3, 0.5, 0.85], "afternoon": [0.35, 0.52, 0.8], "morning": [0.45, 0.6, 0.85],
              "dusk": [0.25, 0.3, 0.55], "overcast": [0.72, 0.74, 0.78]}[tod]
    horizon = {"noon": [0.75, 0.85, 0.95], "afternoon": [0.8, 0.85, 0.9], "morning": [0.85, 0.85, 0.88],
               "dusk": [0.95, 0.65, 0.4], "overcast": [0.85, 0.86, 0.88]}[tod]
    t = np.arange(times)
    drift = rng.normal(0, 0.006)
    exposure = rng.uniform(0.85, 1.15) * np.exp(drift * (t - 1) + 0.02 * np.sin(0.3 * t + rng.uniform(0, 6)))
    kelvin_shift = rng.normal(0, 0.06)  # colour temperature: warm (+) or cool (-)
    wb = np.array([1 + kelvin_shift, 1.0, 1 - kelvin_shift])
    wb_drift = rng.normal(0, 0.002, 3)
    white_balance = wb[None, :] * (1 + wb_drift[None, :] * (t - 1)[:, None])
    return Look(time_of_day=tod, sun=sun, sun_rgb=np.array(warm) * strength,
                ambient_rgb=np.array(warm) * ambient * 0.5 + 0.5 * ambient,
                sky_zenith=np.array(zenith), sky_horizon=np.array(horizon), haze_rgb=np.array(horizon) * 0.95,
                fog_distance=float(rng.uniform(250, 900) if tod != "overcast" else rng.uniform(150, 400)),
                clouds=float(rng.uniform(0, 0.5) if tod != "overcast" else 0.15),
                exposure=exposure.astype(np.float32), white_balance=white_balance.astype(np.float32),
                noise_sigma=float(rng.uniform(0.5, 3.0)), shutter=float(rng.uniform(0.0, 0.35)))


def look_summary(look: Look) -> dict:
    """JSON-friendly summary of a Look for the manifest."""
    return {"time_of_day": look.time_of_day,
            "sun_elevation_deg": round(float(np.rad2deg(np.arcsin(look.sun[1]))), 1),
            "noise_sigma": round(look.noise_sigma, 2), "shutter": round(look.shutter, 3),
            "fog_distance_m": round(look.fog_distance, 1)}
