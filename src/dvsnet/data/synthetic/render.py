"""Vectorised numpy ray casting of a `Scene`: image, labels, depth and exact flow per frame.

Per frame, every pixel's ray (camera at the origin of its ray, direction scaled so that its camera
z component is 1, hence ray parameter == depth) is intersected with the ground plane, then with
each primitive inside that primitive's projected pixel bounding box only. The hit point and the id
of what was hit give exact flow: move the point with its object from frame t to frame s, project it
with camera s; the flow is the projected position minus the pixel position. A flow vector is
marked occluded (invalid) where the moved point leaves the image or falls behind the camera, or
where the surface seen at the nearest target pixel is another one or lies at another depth (the
point is hidden at time s, or it sits on a discontinuity).

Outputs (`SynthFrame`, all for the frame's own time; appearance effects never touch them):
  image          (H, W, 3) uint8 RGB
  labels         (H, W) uint8 Cityscapes train ids (255 never occurs: every pixel is a class)
  flow_forward   (H, W, 2) float32 (dx, dy) px: pixel x of frame t is at x + flow in frame t+1
  flow_backward  (H, W, 2) float32 (dx, dy) px: pixel x of frame t is at x + flow in frame t-1
                 (this is the engine's convention: current pixel -> its position in the key frame)
  occlusion_forward / occlusion_backward  (H, W) bool, True where that flow is not valid
  depth          (H, W) float32 metres along the camera axis, inf for sky
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from dvsnet.data.labels import TRAIN_ID
from dvsnet.data.synthetic import scene as sc
from dvsnet.data.synthetic.textures import SPRITE, TILE, TRANSPARENT, noise_tile

NEAR = 0.05        # m; nearer hits are ignored (the camera is never inside an object)
SKY_DEPTH = 1e5    # m; sky is treated as a point this far along the ray when computing its flow
GROUND_MAT, SKY_MAT = 8, 9
# outward normal per face code: +x -x +y -y +z -z, 6 = sphere (computed), 7 = sky
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [0, 1, 0],
                         [0, 1, 0]], np.float32)
_BITS = np.array([[(k >> a) & 1 for a in range(3)] for k in range(8)], bool)  # corner k: x, y, z from hi?
_EDGES = np.array([[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 3], [2, 6], [3, 7], [4, 5], [4, 6], [5, 7],
                   [6, 7]])


@dataclass(frozen=True)
class SynthFrame:
    """One rendered frame with its exact ground truth (layouts in the module docstring)."""

    index: int
    image: np.ndarray
    labels: np.ndarray
    flow_forward: np.ndarray
    flow_backward: np.ndarray
    occlusion_forward: np.ndarray
    occlusion_backward: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray     # (3, 3) K in pixels
    cam_to_world: np.ndarray   # (4, 4) pose in world metres (camera axes: x right, y down, z forward)


@dataclass
class _Geometry:
    depth: np.ndarray    # (H*W,) float32, inf for sky
    ids: np.ndarray      # (H*W,) int32 primitive id; GROUND = N, SKY = N + 1
    face: np.ndarray     # (H*W,) int8 face code
    rays: np.ndarray     # (3, H*W) float32 world ray directions (camera z component == 1)
    origin: np.ndarray   # (3,) camera centre


class Renderer:
    """Renders the frames of one Scene; `geometry` and `shade` work on frame time indices (t + 1)."""

    def __init__(self, scene: sc.Scene, rng: np.random.Generator) -> None:
        self.scene = scene
        self.rng = rng
        h, w = scene.size
        k = scene.intrinsics
        self.h, self.w = h, w
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.px, self.py = xs.ravel(), ys.ravel()
        self.rcx = (self.px - k.cx) / k.fx  # camera-frame ray, z = 1
        self.rcy = (self.py - k.cy) / k.fy
        self.tile = noise_tile(rng)
        n = scene.count
        self.ground_id, self.sky_id = n, n + 1
        # per-id tables with two extra rows: ground, sky
        self.label = np.concatenate([scene.label, [TRAIN_ID["road"], TRAIN_ID["sky"]]]).astype(np.uint8)
        self.color = np.concatenate([scene.color, np.zeros((2, 3), np.float32)])
        self.material = np.concatenate([scene.material, [GROUND_MAT, SKY_MAT]]).astype(np.int8)
        self.tex = np.concatenate([scene.tex, [[0.1, 16.0, 0, 0], [0, 1, 0, 0]]]).astype(np.float32)
        self.pattern = np.concatenate([scene.pattern, np.zeros((2, 4), np.float32)])
        # (N+2, 11): colour rgb, texture amplitude, scale, u/v offsets, four pattern parameters
        self.params = np.concatenate([self.color, self.tex, self.pattern], axis=1).astype(np.float32)
        self.params7 = np.ascontiguousarray(self.params[:, :7])
        self.tile_flat = self.tile.ravel()
        self.top = np.concatenate([scene.hi[:, 1], [0, 0]]).astype(np.float32)
        self.bottom = np.concatenate([scene.lo[:, 1], [0, 0]]).astype(np.float32)
        self.centre = np.concatenate([(scene.lo + scene.hi) / 2, np.zeros((2, 3), np.float32)])
        look = scene.look
        self.sun = look.sun.astype(np.float32)
        self.face_light = np.clip(FACE_NORMALS @ self.sun, 0, None).astype(np.float32)
        self.ambient = look.ambient_rgb.astype(np.float32)
        self.sun_rgb = look.sun_rgb.astype(np.float32)
        self.haze = look.haze_rgb.astype(np.float32)
        self.offsets = np.concatenate([scene.offsets, np.zeros((2, scene.offsets.shape[1], 3), np.float32)])
        self.moves = np.abs(self.offsets).max(axis=(1, 2)) > 0                     # (N+2,) ever moves

    # ---------------------------------------------------------------- geometry
    def geometry(self, ti: int) -> _Geometry:
        """Cast every pixel's ray at time index ti: depth, id and face of the nearest surface."""
        s = self.scene
        rot, o = s.cam_rot[ti].astype(np.float32), s.cam_pos[ti].astype(np.float32)
        rays = rot[:, 0:1] * self.rcx + rot[:, 1:2] * self.rcy + rot[:, 2:3]  # (3, HW)
        dx, dy, dz = rays
        with np.errstate(divide="ignore", invalid="ignore"):
            ground_t = np.where(dy < -1e-6, -o[1] / dy, np.inf).astype(np.float32)
        depth = ground_t
        ids = np.where(np.isfinite(ground_t), self.ground_id, self.sky_id).astype(np.int32)
        face = np.where(np.isfinite(ground_t), 2, 7).astype(np.int8)
        if s.count:
            lo = s.lo + s.offsets[:, ti]
            hi = s.hi + s.offsets[:, ti]
            boxes, nearest = self._pixel_boxes(lo, hi, rot, o)
            depth2d, ids2d, face2d = depth.reshape(self.h, self.w), ids.reshape(self.h, self.w), \
                face.reshape(self.h, self.w)
            d2 = [a.reshape(self.h, self.w) for a in (dx, dy, dz)]
            visible = np.flatnonzero(boxes[:, 0] >= 0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                inv = [1.0 / a for a in d2]
                for i in visible[np.argsort(nearest[visible], kind="stable")]:  # near to far
                    r0, r1, c0, c1 = boxes[i]
                    win = (slice(r0, r1), slice(c0, c1))
                    if nearest[i] * 0.999 > depth2d[win].max():
                        continue  # hidden behind what is already drawn (margin: float rounding)
                    kind = s.kind[i]
                    if kind == sc.BOX:
                        t, f = self._hit_box(lo[i], hi[i], o, [a[win] for a in inv], [a[win] for a in d2])
                    elif kind == sc.SPHERE:
                        t, f = self._hit_sphere((lo[i] + hi[i]) / 2, s.radius[i], o, [a[win] for a in d2])
                    else:
                        t, f = self._hit_billboard(i, lo[i], hi[i], o, inv[2][win], [a[win] for a in d2])
                    # exact ties go to the ground, then to the lower id: the drawing order never matters
                    drawn, owner = depth2d[win], ids2d[win]
                    hit = (t < drawn) | ((t == drawn) & (owner > i) & (owner < self.ground_id))
                    np.copyto(depth2d[win], t, where=hit)
                    owner[hit] = i
                    if np.ndim(f):
                        np.copyto(face2d[win], f, where=hit)
                    else:
                        face2d[win][hit] = f
        return _Geometry(depth=depth, ids=ids, face=face, rays=rays, origin=o)

    def _pixel_boxes(self, lo: np.ndarray, hi: np.ndarray, rot: np.ndarray, o: np.ndarray) -> np.ndarray:
        """(N, 4) int rows [r0, r1, c0, c1) of each primitive's projection, clipped to the near plane
        (r0 = -1 where nothing is visible), and (N,) the nearest camera depth of its bounding box."""
        k = self.scene.intrinsics
        corners = np.where(_BITS[None], hi[:, None, :], lo[:, None, :])          # (N, 8, 3)
        cam = (corners - o) @ rot                                                  # (N, 8, 3) camera frame
        a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]                          # (N, 12, 3)
        za, zb = a[..., 2:3], b[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (NEAR - za) / (zb - za)
            a2 = np.where((za < NEAR) & (zb >= NEAR), a + (b - a) * s, a)
            b2 = np.where((zb < NEAR) & (za >= NEAR), a + (b - a) * s, b)
        pts = np.concatenate([a2, b2], axis=1)                                     # (N, 24, 3)
        ok = pts[..., 2] >= NEAR * 0.999
        z = np.where(ok, pts[..., 2], 1.0)
        u = k.fx * pts[..., 0] / z + k.cx
        v = k.fy * pts[..., 1] / z + k.cy
        any_ok = ok.any(axis=1)
        umin, umax = np.where(ok, u, np.inf).min(axis=1), np.where(ok, u, -np.inf).max(axis=1)
        vmin, vmax = np.where(ok, v, np.inf).min(axis=1), np.where(ok, v, -np.inf).max(axis=1)
        c0 = np.clip(np.floor(umin), 0, self.w).astype(np.int64)
        c1 = np.clip(np.ceil(umax) + 1, 0, self.w).astype(np.int64)
        r0 = np.clip(np.floor(vmin), 0, self.h).astype(np.int64)
        r1 = np.clip(np.ceil(vmax) + 1, 0, self.h).astype(np.int64)
        visible = any_ok & (c1 > c0) & (r1 > r0)
        r0 = np.where(visible, r0, -1)
        nearest = np.where(ok, pts[..., 2], np.inf).min(axis=1)  # a lower bound of any hit's depth
        return np.stack([r0, r1, c0, c1], axis=1), nearest

    @staticmethod
    def _hit_box(lo, hi, o, inv, d):
        """Slab test. Returns depth (inf where missed) and the face code of the entry face."""
        tx1, tx2 = (lo[0] - o[0]) * inv[0], (hi[0] - o[0]) * inv[0]
        ty1, ty2 = (lo[1] - o[1]) * inv[1], (hi[1] - o[1]) * inv[1]
        tz1, tz2 = (lo[2] - o[2]) * inv[2], (hi[2] - o[2]) * inv[2]
        txn, tyn, tzn = np.minimum(tx1, tx2), np.minimum(ty1, ty2), np.minimum(tz1, tz2)
        tn = np.maximum(np.maximum(txn, tyn), tzn)
        tf = np.minimum(np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2)), np.maximum(tz1, tz2))
        miss = (tn > tf) | (tn < NEAR) | np.isnan(tn)
        t = np.where(miss, np.inf, tn).astype(np.float32)
        # entry face: the slab that was entered last; facing against the ray
        face = np.where(tn == txn, (d[0] > 0).astype(np.int8),
                        np.where(tn == tyn, 2 + (d[1] > 0), 4 + (d[2] > 0))).astype(np.int8)
        return t, face

    @staticmethod
    def _hit_sphere(c, r, o, d):
        oc = o - c
        a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        half_b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        disc = half_b * half_b - a * (oc @ oc - r * r)
        t = (-half_b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc >= 0) & (t > NEAR), t, np.inf).astype(np.float32), 6

    def _hit_billboard(self, i, lo, hi, o, inv_z, d):
        t = (lo[2] - o[2]) * inv_z
        x = o[0] + t * d[0]
        y = o[1] + t * d[1]
        inside = (t > NEAR) & (x >= lo[0]) & (x < hi[0]) & (y >= lo[1]) & (y < hi[1])
        atlas = self.scene.sprites.labels[self.scene.sprite[i]]
        col = np.clip(((x - lo[0]) / (hi[0] - lo[0]) * SPRITE).astype(np.int32), 0, SPRITE - 1)
        row = np.clip(((hi[1] - y) / (hi[1] - lo[1]) * SPRITE).astype(np.int32), 0, SPRITE - 1)
        inside &= atlas[row, col] != TRANSPARENT
        return np.where(inside, t, np.inf).astype(np.float32), 5

    # ---------------------------------------------------------------- flow
    def flow(self, g: _Geometry, ti: int, g_to: _Geometry, tj: int) -> tuple[np.ndarray, np.ndarray]:
        """Flow of time index ti's pixels to time index tj: (H*W, 2) float32 px and (H*W,) bool occluded."""
        s = self.scene
        k = s.intrinsics
        sky = g.ids == self.sky_id
        depth = g.depth.copy()
        np.copyto(depth, np.float32(SKY_DEPTH), where=sky)
        rot, o = s.cam_rot[tj].astype(np.float32), s.cam_pos[tj].astype(np.float32)
        rel = g.rays * depth + (g.origin - o)[:, None]                               # (3, HW) world - cam tj
        mover = np.flatnonzero(np.take(self.moves, g.ids))
        if mover.size:  # objects move with their own translation
            rel[:, mover] += (self.offsets[:, tj] - self.offsets[:, ti])[g.ids[mover]].T
        cam = rot.T @ rel                                                            # (3, HW) camera tj
        z = cam[2]
        front = z > NEAR
        np.copyto(z, np.float32(1.0), where=~front)
        u = cam[0] * (k.fx / z) + k.cx
        v = cam[1] * (k.fy / z) + k.cy
        flow = np.empty((u.size, 2), np.float32)
        flow[:, 0] = u - self.px
        flow[:, 1] = v - self.py
        inside = front & (u > -0.5) & (u < self.w - 0.5) & (v > -0.5) & (v < self.h - 0.5)
        col = np.minimum(np.maximum(u + 0.5, 0), self.w - 1).astype(np.int32)
        row = np.minimum(np.maximum(v + 0.5, 0), self.h - 1).astype(np.int32)
        target = row * self.w + col
        same = np.take(g_to.ids, target) == g.ids
        depth_ok = np.abs(np.take(g_to.depth, target) - z) <= 0.03 * z + 0.05
        visible = inside & same & (depth_ok | sky)
        np.copyto(flow, 0.0, where=~front[:, None])
        return flow, ~visible

    # ---------------------------------------------------------------- appearance
    def shade(self, g: _Geometry, ti: int) -> tuple[np.ndarray, np.ndarray]:
        """(3, H*W) float32 RGB (about [0, 1]) before camera effects, and (H*W,) uint8 labels."""
        s = self.scene
        look = s.look
        ids = g.ids
        sky = ids == self.sky_id
        prm = np.take(self.params7, ids, axis=0)                                    # (HW, 7)
        dep = g.depth.copy()
        np.copyto(dep, 0.0, where=sky)
        local = g.rays * dep + g.origin[:, None]                                    # (3, HW) world
        mover = np.flatnonzero(np.take(self.moves, ids))
        if mover.size:  # object frame: texture and sprite coordinates move with the object
            local[:, mover] = (g.rays[:, mover] * dep[mover]
                               + (g.origin[:, None] - self.offsets[ids[mover], ti].T))
        face = g.face
        axis = face >> 1
        u = local[0].copy()
        np.copyto(u, local[2], where=axis == 0)
        v = local[1].copy()
        np.copyto(v, local[2], where=axis == 1)
        scale = prm[:, 4]
        tu = (u * scale + prm[:, 5]).astype(np.int32) & (TILE - 1)
        tv = (v * scale + prm[:, 6]).astype(np.int32) & (TILE - 1)
        noise = np.take(self.tile_flat, tv * TILE + tu)
        gain = 1 + prm[:, 3] * noise
        col = np.empty((3, ids.size), np.float32)
        for c in range(3):
            col[c] = prm[:, c] * gain
        labels = np.take(self.label, ids)
        mat = np.take(self.material, ids)

        gsel = np.flatnonzero(mat == GROUND_MAT)
        if gsel.size:
            glab, gcol = self._ground(local[0, gsel], local[2, gsel], noise[gsel])
            labels[gsel] = glab
            col[:, gsel] = gcol
        fsel = np.flatnonzero((mat == sc.FACADE) & (axis != 1))
        if fsel.size:  # facades: window grid above the ground floor
            p = self.pattern[ids[fsel]]
            uf, vf = u[fsel] / p[:, 0], v[fsel] / p[:, 1]
            fu, fv = uf - np.floor(uf), vf - np.floor(vf)
            top = self.top[ids[fsel]]
            win = (fu < p[:, 2]) & (fv > 0.3) & (fv < 0.3 + p[:, 3]) & (vf > 1) & (v[fsel] < top - 1)
            wsel = fsel[win]
            glass = 1 + 0.3 * noise[wsel]
            col[:, wsel] = np.array([[0.18], [0.22], [0.28]], np.float32) * glass
            shop = fsel[vf < 0.85]
            col[:, shop] *= 0.7
        vsel = np.flatnonzero(mat == sc.VEHICLE)
        if vsel.size:  # vehicles: a glass band (buses: with pillars)
            p = self.pattern[ids[vsel]]
            y = local[1, vsel]
            ub = u[vsel] / 1.4
            band = ((y > p[:, 1]) & (y < p[:, 2]) & (axis[vsel] != 1)
                    & ((p[:, 3] == 0) | (ub - np.floor(ub) > 0.1)))
            col[:, vsel[band]] = np.array([[0.08], [0.1], [0.13]], np.float32)
        esel = np.flatnonzero(mat == sc.FENCE)
        if esel.size:  # fences: a lattice
            pitch = self.pattern[ids[esel], 0]
            fu, fv = u[esel] / pitch, v[esel] / pitch
            gaps = (fu - np.floor(fu) >= 0.3) & (fv - np.floor(fv) >= 0.3)
            col[:, esel[gaps]] *= 0.45
        bsel = np.flatnonzero(mat == sc.SPRITE_MAT)
        if bsel.size:  # people and riders: colours and labels from the sprite
            bid = ids[bsel]
            lo, hi = s.lo[bid], s.hi[bid]
            c = np.clip(((local[0, bsel] - lo[:, 0]) / (hi[:, 0] - lo[:, 0]) * SPRITE).astype(np.int32), 0,
                        SPRITE - 1)
            r = np.clip(((hi[:, 1] - local[1, bsel]) / (hi[:, 1] - lo[:, 1]) * SPRITE).astype(np.int32), 0,
                        SPRITE - 1)
            spr = s.sprite[bid]
            labels[bsel] = s.sprites.labels[spr, r, c]
            col[:, bsel] = (s.sprites.colors[spr, r, c] * (1 + 0.05 * noise[bsel, None])).T
        lsel = np.flatnonzero((mat == sc.SIGN) & (axis == 2))
        lsel = lsel[self.pattern[ids[lsel], 0] > 0]
        if lsel.size:  # traffic lights: one lit lamp
            lamp = ((local[1, lsel] - self.bottom[ids[lsel]]) / 0.3).astype(np.int32)
            lit = lamp == (ids[lsel] % 3)
            lamps = np.array([[0.2, 1.0, 0.3], [1.0, 0.7, 0.1], [1.0, 0.15, 0.1]], np.float32) * 1.5
            col[:, lsel[lit]] = lamps[ids[lsel[lit]] % 3].T

        lambert = np.take(self.face_light, face)                                  # (HW,) n . sun, clipped
        ssel = np.flatnonzero(face == 6)
        if ssel.size:  # spheres: normals from the centre
            nrm = local[:, ssel] - self.centre[ids[ssel]].T
            lambert[ssel] = np.maximum(self.sun @ nrm / (np.sqrt((nrm * nrm).sum(axis=0)) + 1e-6), 0)
        fog = np.exp(dep * (-1.0 / look.fog_distance))
        for c in range(3):
            col[c] *= self.ambient[c] + lambert * self.sun_rgb[c]
            col[c] = self.haze[c] + (col[c] - self.haze[c]) * fog
        ksel = np.flatnonzero(sky)
        if ksel.size:
            col[:, ksel] = self._sky(g.rays[:, ksel])
        col *= (look.exposure[ti] * look.white_balance[ti]).astype(np.float32)[:, None]
        return col, labels

    def _ground(self, x: np.ndarray, z: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground labels (n,) uint8 and colours (3, n) at world points (x, 0, z)."""
        gr = self.scene.ground
        ax = np.abs(x)
        side = (x > 0).astype(np.int32)
        cell = np.clip((z - gr.cell_z0).astype(np.int32), 0, gr.outer_terrain.shape[1] - 1)
        road, walk, terrain = TRAIN_ID["road"], TRAIN_ID["sidewalk"], TRAIN_ID["terrain"]
        flat = side * gr.outer_terrain.shape[1] + cell
        beyond = ax >= gr.road_half
        outer = ax >= gr.road_half + gr.sidewalk
        verge = beyond & (ax < gr.road_half + 1.0) & np.take(gr.verge.ravel(), flat)
        is_terrain = (outer & np.take(gr.outer_terrain.ravel(), flat)) | verge
        in_cross = np.zeros(x.shape, bool)
        crosswalk = np.zeros(x.shape, bool)
        stripes = (x * (1 / 1.2)) - np.floor(x * (1 / 1.2)) < 0.5
        for zc, hw in gr.cross:
            dz = np.abs(z - zc)
            in_cross |= dz < hw
            crosswalk |= (np.abs(dz - hw - 1.5) < 1.5) & ~beyond & stripes
        is_terrain &= ~in_cross
        is_walk = beyond & ~is_terrain & ~in_cross
        lab = np.full(x.shape, road, np.uint8)
        lab[is_walk] = walk
        lab[is_terrain] = terrain
        col = np.empty((3, x.size), np.float32)
        col[:] = gr.colors[0][:, None]
        col[:, is_walk] = gr.colors[1][:, None]
        col[:, is_terrain] = gr.colors[2][:, None]
        px, pz = x * (1 / 0.6), z * (1 / 0.6)
        paving = is_walk & ((px - np.floor(px) < 0.07) | (pz - np.floor(pz) < 0.07))
        col[:, paving] *= 0.8
        curb = (np.abs(ax - gr.road_half) < 0.15) & ~in_cross & ~verge
        col[:, curb] = gr.colors[4][:, None] * 2.2
        marking = crosswalk
        for mx, hw, period in gr.markings:
            on = np.abs(x - mx) < hw
            if period > 0:
                pz = z * (1 / period)
                on &= pz - np.floor(pz) < 0.45
            marking |= on & ~in_cross
        col[:, marking] = gr.colors[3][:, None]
        amp = np.float32(0.1) + np.float32(0.15) * is_terrain
        col *= 1 + amp * noise
        return lab, col

    def _sky(self, rays: np.ndarray) -> np.ndarray:
        """(3, n) sky colours for (3, n) world ray directions: gradient, clouds, sun glow."""
        look = self.scene.look
        dirs = rays / np.sqrt((rays * rays).sum(axis=0))
        elev = np.clip(dirs[1], -0.2, 1)
        w = np.clip(elev * 2.5, 0, 1) ** 0.7
        col = (look.sky_horizon.astype(np.float32)[:, None] * (1 - w)
               + look.sky_zenith.astype(np.float32)[:, None] * w)
        if look.clouds > 0:
            az = np.arctan2(dirs[0], dirs[2])
            cu = (az * 120).astype(np.int32) & (TILE - 1)
            cv = (elev * 200 / (elev + 0.1)).astype(np.int32) & (TILE - 1)
            cloud = np.clip((np.take(self.tile_flat, cv * TILE + cu) - 0.3) * look.clouds, 0, 0.9)
            col = col * (1 - cloud) + 0.95 * cloud
        glow = np.clip(self.sun @ dirs, 0, 1) ** 64
        col = col + glow * (self.sun_rgb * 0.6)[:, None]
        return col.astype(np.float32)

    def finish(self, rgb: np.ndarray, flow_fwd: np.ndarray, flow_bwd: np.ndarray,
               effects: bool) -> np.ndarray:
        """Camera effects on a (3, H*W) float image: motion blur along the flow, noise; -> (H, W, 3) uint8."""
        img = np.ascontiguousarray(rgb.T).reshape(self.h, self.w, 3)
        img *= 255
        if effects:
            look = self.scene.look
            if look.shutter > 0.01:
                # the scene at t -+ shutter/2 seen through each pixel's own motion (forward and back)
                xs, ys = self.px.reshape(self.h, self.w), self.py.reshape(self.h, self.w)
                acc = img.copy()
                for f in (flow_fwd, flow_bwd):
                    f2 = f.reshape(self.h, self.w, 2) * (look.shutter / 2)
                    acc += cv2.remap(img, xs + f2[..., 0], ys + f2[..., 1], cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
                img = acc * np.float32(1 / 3)
            img += self.rng.standard_normal(img.shape, dtype=np.float32) * np.float32(look.noise_sigma)
        img += 0.5
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)


def render_sequence(seed: int, frames: int = 30, size: tuple[int, int] = (256, 512), *, effects: bool = True,
                    intrinsics: sc.Intrinsics | None = None) -> Iterator[SynthFrame]:
    """Yield `frames` SynthFrames of one procedural street sequence; identical for identical arguments.

    `effects=False` leaves out motion blur and sensor noise (image then depends on geometry and light
    only; exposure and colour-temperature drift stay)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rng = np.random.default_rng(seed)
    scene = sc.build_scene(rng, frames, tuple(size), intrinsics)
    r = Renderer(scene, rng)
    k = scene.intrinsics.matrix()
    geo = {0: r.geometry(0), 1: r.geometry(1)}
    h, w = scene.size
    for t in range(frames):
        ti = t + 1
        geo[ti + 1] = r.geometry(ti + 1)
        g = geo[ti]
        fwd, occ_f = r.flow(g, ti, geo[ti + 1], ti + 1)
        bwd, occ_b = r.flow(g, ti, geo[ti - 1], ti - 1)
        rgb, labels = r.shade(g, ti)
        image = r.finish(rgb, fwd, bwd, effects)
        del geo[ti - 1]
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = scene.cam_rot[ti], scene.cam_pos[ti]
        yield SynthFrame(index=t, image=image, labels=labels.reshape(h, w), flow_forward=fwd.reshape(h, w, 2),
                         flow_backward=bwd.reshape(h, w, 2), occlusion_forward=occ_f.reshape(h, w),
                         occlusion_backward=occ_b.reshape(h, w),
                         depth=g.depth.reshape(h, w).copy(), intrinsics=k, cam_to_world=pose)


def scene_params(seed: int, frames: int = 30, size: tuple[int, int] = (256, 512)) -> dict:
    """The manifest summary of sequence `seed` (same draw as render_sequence)."""
    rng = np.random.default_rng(seed)
    return sc.build_scene(rng, frames, tuple(size)).params


def render_clip(seed: int, frames: int, size: tuple[int, int] = (256, 512)) -> list[np.ndarray]:
    """`frames` H×W×3 uint8 RGB frames of one synthetic street sequence (for demos)."""
    return [f.image for f in render_sequence(seed, frames, size)]
