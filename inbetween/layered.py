"""Layered real photographs: synthetic clips with real pixels and exact optical flow.

The FlyingChairs / FlyingThings recipe, which is what makes learned flow generalise to real
video: a background cut from one photograph and one to four foreground layers cut from
others by random masks (polygons and blobs), each layer moving under its own affine motion
over time ``t`` in ``[0, 1]`` (translation, rotation about its centre, scale). A clip renders
exactly at any ``t`` and gives the exact flow between any two times.

Conventions: frames are uint8 RGB ``(H, W, 3)``; flow is ``(2, H, W)`` float32 ``(dx, dy)`` in
pixels, ``flow(t0, t1)`` telling where each pixel centre of the frame at ``t0`` is at ``t1``.
Pixel ``(col, row)`` has its centre at ``(col, row)`` in frame coordinates.

Layer ``k``'s motion is the affine map ``M_k(t)`` from its canvas (the frame at ``t = 0``) to the
frame at ``t``: ``M(t) = T(c + t s) R(t a) S(1 + t (z - 1)) T(-c)`` with centre ``c``, shift ``s``,
angle ``a`` and zoom ``z``. A pixel ``p`` of layer ``k`` at ``t0`` is at ``M_k(t1) M_k(t0)^-1 p``
at ``t1``. The layer seen at a pixel is the topmost one whose mask covers it (alpha > 0.5);
frames blend the layers' anti-aliased masks back to front.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from inbetween.errors import InbetweenError
from inbetween.video import read_image

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
#: Photographs are kept with their short side at this many pixels (enough for 256 px clips).
PHOTO_SHORT_SIDE = 320


@dataclass(frozen=True)
class Motion:
    """Affine motion over ``t`` in ``[0, 1]`` about ``centre``: ``shift`` (pixels over the clip),
    ``angle`` (radians over the clip), ``zoom`` (scale at ``t = 1``; 1 at ``t = 0``)."""

    centre: tuple[float, float]
    shift: tuple[float, float]
    angle: float
    zoom: float

    def matrix(self, t: float) -> np.ndarray:
        """The 3x3 map from canvas coordinates to frame coordinates at time ``t``."""
        scale = 1.0 + t * (self.zoom - 1.0)
        cos, sin = math.cos(t * self.angle) * scale, math.sin(t * self.angle) * scale
        (cx, cy), (sx, sy) = self.centre, self.shift
        linear = np.array([[cos, -sin], [sin, cos]])
        offset = np.array([cx + t * sx, cy + t * sy]) - linear @ np.array([cx, cy])
        return np.array([[*linear[0], offset[0]], [*linear[1], offset[1]], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Layer:
    """Pixels ``texture`` uint8 ``(h, w, 3)`` and coverage ``alpha`` float32 ``(h, w)`` in ``[0, 1]``,
    placed in the frame at ``t = 0`` by ``placement`` (3x3, texture pixel -> frame coordinates) and
    moving from there by ``motion``."""

    texture: np.ndarray
    alpha: np.ndarray
    placement: np.ndarray
    motion: Motion

    def warped(self, t: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(texture, alpha)`` of this layer in the frame at ``t``, bilinear; beyond its texture alpha is 0."""
        affine = (self.motion.matrix(t) @ self.placement)[:2]
        texture = cv2.warpAffine(self.texture, affine, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101)
        alpha = cv2.warpAffine(self.alpha, affine, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return texture, alpha


def _pixel_grid(height: int, width: int) -> np.ndarray:
    """Homogeneous pixel centres ``(3, H, W)``: ``(col, row, 1)``."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([cols, rows, np.ones_like(cols)])


class LayeredClip:
    """Layers back to front (the first is the background, alpha 1 everywhere) over a ``height x width`` frame."""

    def __init__(self, layers: Sequence[Layer], height: int, width: int) -> None:
        self.layers, self.height, self.width = list(layers), height, width

    def render(self, t: float) -> np.ndarray:
        """The frame at ``t``: uint8 ``(H, W, 3)``."""
        frame = np.zeros((self.height, self.width, 3), np.float32)
        for layer in self.layers:
            texture, alpha = layer.warped(t, self.height, self.width)
            frame += alpha[..., None] * (texture.astype(np.float32) - frame)
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def layer_map(self, t: float) -> np.ndarray:
        """Index of the layer seen at each pixel at ``t`` (the topmost with alpha > 0.5): int ``(H, W)``."""
        seen = np.zeros((self.height, self.width), np.int64)
        for index, layer in enumerate(self.layers[1:], start=1):
            seen[layer.warped(t, self.height, self.width)[1] > 0.5] = index
        return seen

    def flow(self, t0: float, t1: float) -> np.ndarray:
        """Exact flow ``(2, H, W)`` float32 from the frame at ``t0`` to the frame at ``t1``."""
        return self.flow_and_visible(t0, t1)[0]

    def flow_and_visible(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """The flow from ``t0`` to ``t1`` and whether each pixel's layer is still seen at its destination
        at ``t1`` (inside the frame and not covered): ``((2, H, W) float32, (H, W) bool)``."""
        grid = _pixel_grid(self.height, self.width)
        seen = self.layer_map(t0)
        flow = np.zeros((2, self.height, self.width))
        for index, layer in enumerate(self.layers):
            mapping = layer.motion.matrix(t1) @ np.linalg.inv(layer.motion.matrix(t0))  # placement cancels
            moved = np.einsum("ij,jhw->ihw", mapping, grid)[:2] - grid[:2]
            flow[:, seen == index] = moved[:, seen == index]
        destination = grid[:2] + flow
        inside = ((destination[0] >= -0.5) & (destination[0] <= self.width - 0.5)
                  & (destination[1] >= -0.5) & (destination[1] <= self.height - 0.5))
        cols = np.clip(np.rint(destination[0]), 0, self.width - 1).astype(np.int64)
        rows = np.clip(np.rint(destination[1]), 0, self.height - 1).astype(np.int64)
        visible = inside & (self.layer_map(t1)[rows, cols] == seen)
        return flow.astype(np.float32), visible


# ----------------------------------------------------------------------------------------------
# Random clips from photographs


def photo_paths(folder: str | Path) -> list[Path]:
    """Every photograph under ``folder`` (recursively), sorted; raises :class:`InbetweenError` if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InbetweenError(f"photo folder '{folder}' does not exist. Point it at a folder of photographs "
                             "(e.g. ../shared/data/real/train/photos; the default is $INBETWEEN_DATA/train/photos).")
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        raise InbetweenError(f"no photographs ({', '.join(sorted(PHOTO_SUFFIXES))}) found under '{folder}'.")
    return paths


@functools.lru_cache(maxsize=1024)
def load_photo(path: Path) -> np.ndarray:
    """The photograph at ``path``, uint8 RGB, resized so its short side is :data:`PHOTO_SHORT_SIDE`."""
    pixels = read_image(path)
    scale = PHOTO_SHORT_SIDE / min(pixels.shape[:2])
    size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _crop(photo: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``height x width`` crop of ``photo``, scaled up first if it is smaller."""
    scale = max(height / photo.shape[0], width / photo.shape[1], 1.0)
    if scale > 1.0:
        photo = cv2.resize(photo, (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale)),
                           interpolation=cv2.INTER_CUBIC)
    top = int(rng.integers(photo.shape[0] - height + 1))
    left = int(rng.integers(photo.shape[1] - width + 1))
    return photo[top:top + height, left:left + width]


def _polygon_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A star-shaped random polygon filling about a ``size`` box, float32 ``(size, size)``, anti-aliased."""
    corners = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
    radii = rng.uniform(0.45, 1.0, corners) * size / 2
    points = np.stack([size / 2 + radii * np.cos(angles), size / 2 + radii * np.sin(angles)], axis=1)
    mask = np.zeros((size * 4, size * 4), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], 255)
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _blob_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random blob: thresholded blurred noise under a round falloff, float32 ``(size, size)``."""
    noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 8)
    noise /= noise.std() + 1e-6
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    field = noise + 2.5 * (1 - (rows**2 + cols**2))
    return np.clip((field - 1.5) * 4 + 0.5, 0, 1).astype(np.float32)


def _random_motion(rng: np.random.Generator, centre: tuple[float, float], reach: float, max_angle: float,
                   zoom_range: tuple[float, float]) -> Motion:
    direction = rng.uniform(0, 2 * math.pi)
    distance = reach * math.sqrt(rng.uniform(0, 1))
    zoom = math.exp(rng.uniform(*np.log(zoom_range)))
    return Motion(centre, (distance * math.cos(direction), distance * math.sin(direction)),
                  rng.uniform(-max_angle, max_angle), zoom)


def random_clip(photos: Sequence[Path], seed: int, height: int, width: int | None = None) -> LayeredClip:
    """A random layered clip of ``height x width`` frames from ``photos``, reproducible from ``seed``.

    Background: a photo crop with a moderate camera motion (up to a tenth of the frame, 6 degrees,
    zoom 0.9 to 1.1). Foreground: 1 to 4 crops of other photos under polygon or blob masks, a
    tenth to a half of the frame across, each moving up to a third of the frame with rotation up
    to 30 degrees and zoom 0.7 to 1.4.
    """
    width = width or height
    rng = np.random.default_rng(seed)
    side = min(height, width)
    margin = max(height, width) // 4  # background beyond the frame: its motion never shows an edge
    background = _crop(load_photo(photos[int(rng.integers(len(photos)))]), height + 2 * margin, width + 2 * margin,
                       rng)
    frame_centre = ((width - 1) / 2, (height - 1) / 2)
    layers = [Layer(background, np.ones(background.shape[:2], np.float32), _translation(-margin, -margin),
                    _random_motion(rng, frame_centre, side / 10, math.radians(6), (0.9, 1.1)))]
    for _ in range(int(rng.integers(1, 5))):
        size = int(rng.uniform(0.1, 0.5) * side) + 8
        texture = _crop(load_photo(photos[int(rng.integers(len(photos)))]), size, size, rng)
        alpha = _polygon_mask(size, rng) if rng.uniform() < 0.5 else _blob_mask(size, rng)
        x, y = rng.uniform(0, width - size), rng.uniform(0, height - size)
        motion = _random_motion(rng, (x + size / 2, y + size / 2), side / 3, math.radians(30), (0.7, 1.4))
        layers.append(Layer(texture, alpha, _translation(x, y), motion))
    return LayeredClip(layers, height, width)


def _translation(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])
