"""The Shapes World: captions, scenes, moving clips with exact optical flow, and an attribute reader.

``docs/WORLD.md`` is the spec; this module implements it. Conventions:

* A caption names one object on a solid background; :func:`parse_caption` turns it into a
  :class:`Scene`, :meth:`Scene.caption` writes the canonical form back.
* Coordinates are normalised: ``x`` in ``[0, 1]`` left to right, ``y`` in ``[0, 1]`` top to
  bottom; lengths are in units of ``L = min(H, W)``. In pixels, the centre of column ``col`` is
  at ``x_px = col + 0.5`` (normalised ``x_px / W``), likewise rows.
* numpy images are ``uint8 (H, W, 3)`` RGB; torch images are float ``(3, H, W)`` in ``[-1, 1]``.
* Flow is ``float32 (2, H, W)``, channels ``(dx, dy)`` in pixels: where the pixel of the frame at
  ``t0`` lands in the frame at ``t1``.
* Rendering is analytic and anti-aliased by ``4 x 4`` supersampling, so any time, size and
  sub-pixel position renders exactly and the flow is exact.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inbetween.errors import InbetweenError
from inbetween.video import from_uint8, to_uint8

#: Size word -> circumradius, in units of ``min(H, W)``.
SIZES: dict[str, float] = {"small": 0.10, "medium": 0.16, "large": 0.24}
#: Object colour word -> 8-bit RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 200),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
    "purple": (130, 60, 200),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
#: Position words -> normalised object centre ``(x, y)``.
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
}
#: Background word -> 8-bit RGB.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128)}
CLIP_KINDS: tuple[str, ...] = ("translate", "ease", "arc", "rotate", "scale", "occlusion", "texture", "large")

# ----------------------------------------------------------------------------------------------
# Captions

#: Caption slot -> its words, in caption order (the order of :func:`all_captions`' product).
SLOTS: dict[str, Sequence[str]] = {
    "size": tuple(SIZES),
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "position": tuple(POSITIONS),
    "background": tuple(BACKGROUNDS),
}
_FILLERS = ("a", "an", "the", "at", "on", "in", "background")
_SPELLINGS = {"centre": "center", "grey": "gray"}


def _vocabulary() -> str:
    """The caption vocabulary in words, for error messages."""
    slots = "; ".join(f"{slot}: {', '.join(words)}" for slot, words in SLOTS.items())
    return f"The vocabulary is {slots} (filler words {', '.join(_FILLERS)} are ignored)."


@dataclass(frozen=True)
class Scene:
    """One object on a solid background; every field is a word of its slot's vocabulary."""

    size: str = "medium"
    colour: str = "red"
    shape: str = "circle"
    position: str = "center"
    background: str = "black"

    def __post_init__(self) -> None:
        for slot, words in SLOTS.items():
            if getattr(self, slot) not in words:
                raise InbetweenError(f"{getattr(self, slot)!r} is not a {slot}. {_vocabulary()}")

    def caption(self) -> str:
        """The canonical caption, e.g. ``a large red circle at the left on a black background``."""
        return f"a {self.size} {self.colour} {self.shape} at the {self.position} on a {self.background} background"

    @classmethod
    def random(cls, rng: np.random.Generator) -> Scene:
        """A scene with every slot drawn uniformly from ``rng``."""
        return cls(**{slot: words[rng.integers(len(words))] for slot, words in SLOTS.items()})


def _caption_words(text: str) -> list[str]:
    """Lower-case words of ``text`` without commas, spellings normalised, ``top left`` etc. joined."""
    words: list[str] = []
    for token in text.lower().replace(",", " ").split():
        token = _SPELLINGS.get(token, token)
        if words and f"{words[-1]} {token}" in POSITIONS:
            words[-1] = f"{words[-1]} {token}"
        else:
            words.append(token)
    return words


def _slot_of(word: str, after_on: bool) -> str:
    """The slot ``word`` fills; a colour word right after ``on`` must name the background."""
    if after_on and word in COLOURS:
        raise InbetweenError(f"{word!r} after 'on' names the background, which must be "
                             f"{', '.join(BACKGROUNDS)}. {_vocabulary()}")
    for slot, words in SLOTS.items():
        if word in words:
            return slot
    raise InbetweenError(f"Unknown word {word!r} in the caption. {_vocabulary()}")


def _read_slots(text: str) -> Iterator[tuple[str, str | InbetweenError]]:
    """``(word, slot)`` for each meaningful word of ``text``, or ``(word, error)`` for a word that
    fills no slot (outside the vocabulary, a colour as background, a slot given twice)."""
    filled: dict[str, str] = {}
    after_on = False
    for word in _caption_words(text):
        if word in _FILLERS:
            after_on = after_on or word == "on"
            continue
        try:
            slot = _slot_of(word, after_on)
            if slot in filled:
                raise InbetweenError(f"{word!r} gives the {slot} a second time (already {filled[slot]!r}) "
                                     f"in {text!r}. {_vocabulary()}")
        except InbetweenError as error:
            yield word, error
        else:
            filled[slot] = word
            yield word, slot
        after_on = False


def parse_caption(text: str) -> Scene:
    """The :class:`Scene` a caption describes; missing slots take the :class:`Scene` defaults.

    Raises :class:`InbetweenError` naming the word for a word outside the vocabulary or a slot
    given twice.
    """
    slots: dict[str, str] = {}
    for word, slot in _read_slots(text):
        if isinstance(slot, InbetweenError):
            raise slot
        slots[slot] = word
    return Scene(**slots)


def canonical_caption(text: str) -> tuple[str, list[str]]:
    """``(caption, ignored)``: the canonical caption of the words of ``text`` the world knows, left-out
    slots taking the :class:`Scene` defaults, and the words that fill no slot and were left out.

    ``canonical_caption("a red circle at the left")`` is ``("a medium red circle at the left on a black
    background", [])``; a caption :func:`parse_caption` accepts has no ignored words.
    """
    slots: dict[str, str] = {}
    ignored: list[str] = []
    for word, slot in _read_slots(text):
        if isinstance(slot, InbetweenError):
            ignored.append(word)
        else:
            slots[slot] = word
    return Scene(**slots).caption(), ignored


def all_captions() -> list[str]:
    """The canonical caption of every scene (3 sizes x 8 colours x 4 shapes x 9 positions x 3
    backgrounds = 2592), in a fixed order."""
    return [Scene(*words).caption() for words in itertools.product(*SLOTS.values())]


def random_captions(n: int, seed: int) -> list[str]:
    """``n`` canonical captions of uniformly random scenes, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [Scene.random(rng).caption() for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# Layers: textures, paths, background and sprites

_SUPERSAMPLES = 4  # per pixel along each axis
_MID_GRAY = 128.0


@dataclass(frozen=True, eq=False)
class _Texture:
    """A smooth colour field over local coordinates ``(u, v)`` (units of ``L``): a few plane waves.

    ``colour(u, v) = base + sum_k sin(theta_k) weights[0, k] + cos(theta_k) weights[1, k]`` with
    ``theta_k = 2 pi (freqs[k, 0] u + freqs[k, 1] v)``.
    """

    base: np.ndarray  # float32 (3,) mean RGB
    freqs: np.ndarray  # float32 (K, 2) cycles per unit length
    weights: np.ndarray  # float32 (2, K, 3) RGB amplitude of the sine and cosine of each wave

    @classmethod
    def random(cls, rng: np.random.Generator, rgb: Sequence[int], pull: float) -> _Texture:
        """Waves of wavelength ``0.12..0.3 L`` around ``rgb`` pulled by ``pull`` toward mid gray."""
        waves = 4
        wavelength = rng.uniform(0.12, 0.3, waves)
        direction = rng.uniform(0.0, 2 * math.pi, waves)
        freqs = np.stack([np.cos(direction), np.sin(direction)], axis=1) / wavelength[:, None]
        amplitude = rng.uniform(6.0, 12.0, (waves, 3))
        phase = rng.uniform(0.0, 2 * math.pi, (waves, 3))
        weights = np.stack([amplitude * np.cos(phase), amplitude * np.sin(phase)])
        base = (1 - pull) * np.asarray(rgb, np.float64) + pull * _MID_GRAY
        return cls(*(a.astype(np.float32) for a in (base, freqs, weights)))

    def at(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Colours ``(N, 3)`` at points ``u, v`` (each ``(N,)``)."""
        theta = 2 * math.pi * (u[:, None] * self.freqs[:, 0] + v[:, None] * self.freqs[:, 1])
        return self.base + np.sin(theta) @ self.weights[0] + np.cos(theta) @ self.weights[1]

    def grid(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Mean colours ``float32 (NV, NU, 3)`` over the cells of a grid.

        ``u`` is ``(NU, m)``: the ``m`` sample abscissae of each grid column; ``v`` is ``(NV, m)``
        likewise for rows. Each output is the mean over that cell's ``m x m`` samples; the waves
        are separable, so this costs one small matrix product per channel.
        """
        a = 2 * math.pi * u[..., None] * self.freqs[:, 0]  # (NU, m, K)
        b = 2 * math.pi * v[..., None] * self.freqs[:, 1]  # (NV, m, K)
        sin_a, cos_a = np.sin(a).mean(1), np.cos(a).mean(1)  # (NU, K)
        sin_b, cos_b = np.sin(b).mean(1)[..., None], np.cos(b).mean(1)[..., None]  # (NV, K, 1)
        w_sin, w_cos = self.weights
        # sin(a+b) = sin a cos b + cos a sin b;  cos(a+b) = cos a cos b - sin a sin b
        rows = np.concatenate([cos_b * w_sin - sin_b * w_cos, sin_b * w_sin + cos_b * w_cos], axis=1)  # (NV, 2K, 3)
        cols = np.concatenate([sin_a, cos_a], axis=1)  # (NU, 2K)
        return self.base + np.einsum("ykc,xk->yxc", rows, cols, optimize=True)


@dataclass(frozen=True)
class _Bezier:
    """Quadratic Bezier path ``start -> end`` bent toward ``control`` (normalised coordinates)."""

    start: tuple[float, float]
    control: tuple[float, float]
    end: tuple[float, float]

    @classmethod
    def line(cls, start: Sequence[float], end: Sequence[float], bend: float = 0.0) -> _Bezier:
        """A straight path, or with ``bend`` != 0 one whose control point sits ``bend * length`` aside."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        delta = end - start
        control = (start + end) / 2 + bend * np.array([-delta[1], delta[0]])
        return cls(tuple(start), tuple(control), tuple(end))

    def at(self, tau: float) -> np.ndarray:
        """Position ``(x, y)`` at path parameter ``tau`` in ``[0, 1]``."""
        start, control, end = (np.asarray(p) for p in (self.start, self.control, self.end))
        return (1 - tau) ** 2 * start + 2 * (1 - tau) * tau * control + tau**2 * end


@dataclass(frozen=True)
class _Arc:
    """Circular arc (normalised coordinates) from angle ``start`` turning by ``sweep`` radians."""

    centre: tuple[float, float]
    radius: float
    start: float
    sweep: float

    def at(self, tau: float) -> np.ndarray:
        """Position ``(x, y)`` at path parameter ``tau`` in ``[0, 1]``."""
        angle = self.start + self.sweep * tau
        return np.asarray(self.centre) + self.radius * np.array([math.cos(angle), math.sin(angle)])


_EASINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "ease": lambda t: t * t * (3 - 2 * t),  # smoothstep: ease in and out
}

# Polygon shapes as n-pointed stars at unit circumradius: (points, inner radius, angle of the first
# point clockwise from up). A regular n-gon is the star whose inner radius is its apothem.
_POLYGONS: dict[str, tuple[int, float, float]] = {
    "square": (4, math.cos(math.pi / 4), math.pi / 4),
    "triangle": (3, math.cos(math.pi / 3), 0.0),
    "star": (5, 0.45, 0.0),
}
#: Area of each shape at unit circumradius.
_AREA_FACTORS: dict[str, float] = {"circle": math.pi} | {
    shape: n * inner * math.sin(math.pi / n) for shape, (n, inner, _) in _POLYGONS.items()
}


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points ``(u, v)`` (``v`` down, unit circumradius) lie in ``shape`` at rotation 0."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    points, inner, offset = _POLYGONS[shape]
    sector = 2 * math.pi / points
    # Fold the angle into [0, sector / 2]: the half-sector between a point (angle 0) and an inner vertex.
    angle = np.mod(np.arctan2(u, -v) - offset, sector)
    angle = np.minimum(angle, sector - angle)
    rho = np.hypot(u, v)
    px, py = rho * np.cos(angle), rho * np.sin(angle)
    bx, by = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
    # Inside iff on the centre's side of the edge from the point (1, 0) to the inner vertex (bx, by).
    return (bx - 1.0) * py - by * (px - 1.0) >= 0.0


@dataclass(frozen=True, eq=False)
class _Background:
    """The back layer: a solid colour or a texture whose offset pans by ``pan`` (units of L) over the clip."""

    rgb: tuple[int, int, int]
    texture: _Texture | None = None
    pan: tuple[float, float] = (0.0, 0.0)

    def grid(self, t: float, xs: np.ndarray, ys: np.ndarray, length: int) -> np.ndarray:
        """Mean colours ``float32 (NY, NX, 3)`` of grid cells at time ``t``.

        ``xs (NX, m)`` and ``ys (NY, m)`` are the cells' sample coordinates in pixels (see
        :meth:`_Texture.grid`); ``length`` is ``L = min(H, W)``.
        """
        if self.texture is None:
            return np.full((len(ys), len(xs), 3), self.rgb, np.float32)
        return self.texture.grid(xs / length - self.pan[0] * t, ys / length - self.pan[1] * t)

    def displacement(self, t0: float, t1: float, length: int) -> tuple[float, float]:
        """How far, in pixels, the background moves from ``t0`` to ``t1``."""
        return self.pan[0] * (t1 - t0) * length, self.pan[1] * (t1 - t0) * length


@dataclass(frozen=True, eq=False)
class _Sprite:
    """An object layer: a shape moving along ``path`` under ``easing``, turning and scaling linearly in t.

    Local coordinates ``(u, v)`` are in units of ``L`` before scaling, origin at the object's centre;
    the pixel position of a local point at time ``t`` is
    ``centre_px(t) + L * scale(t) * R(angle(t)) (u, v)``.
    """

    shape: str
    rgb: tuple[int, int, int]
    radius: float  # circumradius at scale 1, units of L
    path: _Bezier | _Arc
    easing: str = "linear"
    angle: float = 0.0  # radians at t = 0, clockwise on screen
    turn: float = 0.0  # radians turned over the clip
    scale_end: float = 1.0  # size factor at t = 1 (1 at t = 0)
    texture: _Texture | None = None

    def _pose(self, t: float, height: int, width: int) -> tuple[float, float, float, float, float]:
        """``(cx, cy, cos, sin, stretch)``: centre in pixels, rotation, pixels per local unit."""
        x, y = self.path.at(_EASINGS[self.easing](t))
        angle = self.angle + self.turn * t
        stretch = min(height, width) * (1 + (self.scale_end - 1) * t)
        return x * width, y * height, math.cos(angle), math.sin(angle), stretch

    def to_local(self, t: float, x: np.ndarray, y: np.ndarray, height: int, width: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Local coordinates of pixel positions ``(x, y)`` (any broadcastable shapes) at time ``t``."""
        cx, cy, cos, sin, stretch = self._pose(t, height, width)
        dx, dy = x - cx, y - cy
        return (cos * dx + sin * dy) / stretch, (cos * dy - sin * dx) / stretch

    def to_pixels(self, t: float, u: np.ndarray, v: np.ndarray, height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions of local coordinates ``(u, v)`` at time ``t``; inverse of :meth:`to_local`."""
        cx, cy, cos, sin, stretch = self._pose(t, height, width)
        return cx + stretch * (cos * u - sin * v), cy + stretch * (sin * u + cos * v)

    def covers(self, t: float, x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
        """Whether the object covers pixel positions ``(x, y)`` at time ``t``."""
        u, v = self.to_local(t, x, y, height, width)
        return _inside(self.shape, u / self.radius, v / self.radius)

    def box(self, t: float, height: int, width: int) -> tuple[int, int, int, int]:
        """Pixel rows and columns ``(row0, row1, col0, col1)`` (clipped to the frame) the object may touch."""
        cx, cy, _, _, stretch = self._pose(t, height, width)
        reach = self.radius * stretch + 1
        return (min(max(math.floor(cy - reach), 0), height), min(max(math.ceil(cy + reach), 0), height),
                min(max(math.floor(cx - reach), 0), width), min(max(math.ceil(cx + reach), 0), width))

    def paint(self, samples: np.ndarray, t: float, xs: np.ndarray, ys: np.ndarray, height: int, width: int) -> None:
        """Draw over ``samples (NY, NX, 3)`` whose sample positions are pixel coordinates ``xs (NX,)``, ``ys (NY,)``."""
        u, v = (c.astype(np.float32) for c in self.to_local(t, xs[None, :], ys[:, None], height, width))
        inside = _inside(self.shape, u / self.radius, v / self.radius)
        samples[inside] = self.rgb if self.texture is None else self.texture.at(u[inside], v[inside])


# ----------------------------------------------------------------------------------------------
# Clips


def _frame(height: int, width: int | None) -> tuple[int, int]:
    """``(H, W)``; ``width`` defaults to ``height``."""
    width = height if width is None else width
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise InbetweenError(f"Frame size must be positive whole pixels, got height={height}, width={width}.")
    return int(height), int(width)


def _subpixels(start: int, stop: int) -> np.ndarray:
    """Sample coordinates ``(stop - start, S)`` in pixels of the ``S`` supersamples across pixels ``start..stop-1``."""
    return np.arange(start, stop)[:, None] + (np.arange(_SUPERSAMPLES) + 0.5) / _SUPERSAMPLES


def _pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``, each ``(H, W)``."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    return x, y


@dataclass(frozen=True, eq=False)
class Clip:
    """Layers moving over ``t`` in ``[0, 1]``: a background, then sprites back to front.

    Renders any ``t`` at any size and gives exact flow between any two times. Build one with
    :meth:`random` (seeded, by motion kind) or :meth:`from_scene` (a still scene).
    """

    background: _Background
    sprites: tuple[_Sprite, ...]  # at least one

    @classmethod
    def random(cls, seed: int, kind: str, textured: bool | None = None) -> Clip:
        """A random clip of motion ``kind`` (one of :data:`CLIP_KINDS`), reproducible from ``(seed, kind)``.

        Outside the ``texture`` kind each layer is textured at random; ``textured=True`` or ``False``
        forces every layer's texture on or off without changing anything else about the clip.
        """
        if kind not in CLIP_KINDS:
            raise InbetweenError(f"Unknown clip kind {kind!r}; choose one of {', '.join(CLIP_KINDS)}.")
        rng = np.random.default_rng([seed, CLIP_KINDS.index(kind)])
        background = _random_background(rng, kind, textured)
        motions = _MOTIONS[kind](rng)
        shapes = [s for s in SHAPES if s != "circle"] if kind == "rotate" else list(SHAPES)
        colours = rng.permutation(len(COLOURS))
        sprites = tuple(_random_sprite(rng, kind, textured, shapes, list(COLOURS.values())[c], motion)
                        for c, motion in zip(colours, motions))
        return cls(background, sprites)

    @classmethod
    def every_kind(cls, clips_per_kind: int, seed: int) -> Iterator[tuple[str, int, Clip]]:
        """``clips_per_kind`` clips of each of :data:`CLIP_KINDS` in turn, as ``(kind, index, clip)``: clip
        ``index`` of the ``k``-th kind has seed ``seed + k * clips_per_kind + index``."""
        for kind_index, kind in enumerate(CLIP_KINDS):
            for index in range(clips_per_kind):
                yield kind, index, cls.random(seed + kind_index * clips_per_kind + index, kind)

    @classmethod
    def from_scene(cls, scene: Scene) -> Clip:
        """The still clip of ``scene``: its object, unrotated and untextured, at its position."""
        position = POSITIONS[scene.position]
        sprite = _Sprite(scene.shape, COLOURS[scene.colour], SIZES[scene.size], _Bezier.line(position, position))
        return cls(_Background(BACKGROUNDS[scene.background]), (sprite,))

    def render(self, t: float, height: int, width: int | None = None) -> np.ndarray:
        """The frame at time ``t``: ``uint8 (H, W, 3)`` RGB (``width`` defaults to ``height``)."""
        height, width = _frame(height, width)
        length = min(height, width)
        image = self.background.grid(t, _subpixels(0, width), _subpixels(0, height), length)
        # Supersample only the window the sprites may touch; elsewhere the background's cell means stand.
        rows0, rows1, cols0, cols1 = zip(*(sprite.box(t, height, width) for sprite in self.sprites))
        row0, row1, col0, col1 = min(rows0), max(rows1), min(cols0), max(cols1)
        if row0 < row1 and col0 < col1:
            xs, ys = _subpixels(col0, col1).reshape(-1, 1), _subpixels(row0, row1).reshape(-1, 1)
            samples = self.background.grid(t, xs, ys, length)
            for sprite in self.sprites:
                sprite.paint(samples, t, xs[:, 0], ys[:, 0], height, width)
            s = _SUPERSAMPLES
            image[row0:row1, col0:col1] = samples.reshape(row1 - row0, s, col1 - col0, s, 3).mean(axis=(1, 3))
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)

    def _layers_at(self, t: float, x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
        """Index of the visible layer at pixel positions ``(x, y)``: 0 background, ``k`` the k-th sprite."""
        layers = np.zeros(np.broadcast(x, y).shape, np.int64)
        for index, sprite in enumerate(self.sprites, start=1):
            layers[sprite.covers(t, x, y, height, width)] = index
        return layers

    def layer_map(self, t: float, height: int, width: int | None = None) -> np.ndarray:
        """``int64 (H, W)``: the layer visible at each pixel centre at ``t`` (0 background, k = k-th sprite)."""
        height, width = _frame(height, width)
        return self._layers_at(t, *_pixel_centres(height, width), height, width)

    def flow(self, t0: float, t1: float, height: int, width: int | None = None) -> np.ndarray:
        """Exact flow ``float32 (2, H, W)`` in pixels from the frame at ``t0`` to the frame at ``t1``.

        Each pixel centre follows the layer visible there at ``t0``, whether or not that layer is
        still visible at ``t1`` (see :meth:`visible_mask`).
        """
        height, width = _frame(height, width)
        x, y = _pixel_centres(height, width)
        layers = self._layers_at(t0, x, y, height, width)
        flow = np.empty((2, height, width), np.float32)
        flow[0], flow[1] = self.background.displacement(t0, t1, min(height, width))
        for index, sprite in enumerate(self.sprites, start=1):
            mine = layers == index
            u, v = sprite.to_local(t0, x[mine], y[mine], height, width)
            x1, y1 = sprite.to_pixels(t1, u, v, height, width)
            flow[0][mine], flow[1][mine] = x1 - x[mine], y1 - y[mine]
        return flow

    def visible_mask(self, t0: float, t1: float, height: int, width: int | None = None) -> np.ndarray:
        """``bool (H, W)``: the pixel's layer at ``t0`` lands inside the frame at ``t1`` and is visible there."""
        return self.flow_and_visible(t0, t1, height, width)[1]

    def flow_and_visible(self, t0: float, t1: float, height: int, width: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`flow` and :meth:`visible_mask` from ``t0`` to ``t1`` together (the mask needs the flow)."""
        height, width = _frame(height, width)
        x, y = _pixel_centres(height, width)
        flow = self.flow(t0, t1, height, width)
        x1, y1 = x + flow[0], y + flow[1]
        in_frame = (x1 >= 0) & (x1 < width) & (y1 >= 0) & (y1 < height)
        visible = in_frame & (self._layers_at(t1, x1, y1, height, width) == self._layers_at(t0, x, y, height, width))
        return flow, visible


def _random_background(rng: np.random.Generator, kind: str, textured: bool | None) -> _Background:
    """A random background; for the ``texture`` kind always textured and panning slowly."""
    rgb = list(BACKGROUNDS.values())[rng.integers(len(BACKGROUNDS))]
    texture = _Texture.random(rng, rgb, pull=0.5)
    speed, heading = rng.uniform(0.015, 0.035), rng.uniform(0, 2 * math.pi)
    pan = (speed * math.cos(heading), speed * math.sin(heading)) if kind == "texture" else (0.0, 0.0)
    if not _textured(rng, kind, textured):
        return _Background(rgb)
    return _Background(rgb, texture, pan)


def _random_sprite(rng: np.random.Generator, kind: str, textured: bool | None, shapes: list[str],
                   rgb: tuple[int, int, int], motion: dict) -> _Sprite:
    """A random object (shape, radius, start angle, texture) following ``motion``."""
    shape = shapes[rng.integers(len(shapes))]
    radius, angle = rng.uniform(0.09, 0.17), rng.uniform(0, 2 * math.pi)
    texture = _Texture.random(rng, rgb, pull=0.4)
    if not _textured(rng, kind, textured):
        texture = None
    return _Sprite(shape, rgb, radius, angle=angle, texture=texture, **motion)


def _textured(rng: np.random.Generator, kind: str, textured: bool | None) -> bool:
    """Whether a layer is textured: always for the ``texture`` kind, else at random, unless forced."""
    drawn = kind == "texture" or rng.random() < 0.5
    return drawn if textured is None else textured


_BOX = (0.2, 0.8)  # where path ends lie, normalised


def _segment(rng: np.random.Generator, shortest: float, longest: float, box: tuple[float, float] = _BOX) -> tuple:
    """Random start and end points inside ``box`` whose distance is in ``[shortest, longest]``."""
    while True:
        start = rng.uniform(*box, 2)
        heading = rng.uniform(0, 2 * math.pi)
        end = start + rng.uniform(shortest, longest) * np.array([math.cos(heading), math.sin(heading)])
        if np.all((end >= box[0]) & (end <= box[1])):
            return start, end


def _easing(rng: np.random.Generator) -> str:
    return tuple(_EASINGS)[rng.integers(len(_EASINGS))]


def _sprite_count(rng: np.random.Generator) -> int:
    """One object, sometimes two."""
    return 1 + int(rng.random() < 0.35)


def _repeat(motion: Callable[[np.random.Generator], dict]) -> Callable[[np.random.Generator], list[dict]]:
    """Motions for one or two independently moving objects of the same kind."""
    return lambda rng: [motion(rng) for _ in range(_sprite_count(rng))]


def _crossing(rng: np.random.Generator) -> list[dict]:
    """Two objects on straight paths that cross at a common point at mid-clip."""
    meet = rng.uniform(0.4, 0.6, 2)
    heading = rng.uniform(0, 2 * math.pi)
    headings = (heading, heading + rng.choice([-1, 1]) * rng.uniform(math.pi / 3, 2 * math.pi / 3))
    easing = _easing(rng)
    motions = []
    for h in headings:
        half = rng.uniform(0.15, 0.25) * np.array([math.cos(h), math.sin(h)])
        motions.append(dict(path=_Bezier.line(meet - half, meet + half), easing=easing))
    return motions


_MOTIONS: dict[str, Callable[[np.random.Generator], list[dict]]] = {
    "translate": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.1, 0.35)))),
    "ease": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.15, 0.4), bend=rng.uniform(-0.25, 0.25)),
                                     easing="ease")),
    "arc": _repeat(lambda rng: dict(
        path=_Arc(tuple(rng.uniform(0.4, 0.6, 2)), rng.uniform(0.15, 0.28), rng.uniform(0, 2 * math.pi),
                  rng.choice([-1, 1]) * rng.uniform(math.pi / 3, math.pi)),
        easing=_easing(rng))),
    "rotate": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.0, 0.08)),
                                       turn=rng.choice([-1, 1]) * rng.uniform(math.pi / 3, math.pi))),
    "scale": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.0, 0.08)),
                                      scale_end=rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.25, 1.6)]))),
    "occlusion": _crossing,
    "texture": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.015, 0.04)),
                                        turn=rng.uniform(-0.06, 0.06))),
    "large": _repeat(lambda rng: dict(path=_Bezier.line(*_segment(rng, 0.5, 0.62, box=(0.18, 0.82)),
                                                        bend=rng.uniform(-0.15, 0.15)),
                                      easing=_easing(rng))),
}


# ----------------------------------------------------------------------------------------------
# Rendering scenes and captions


def render_scene(scene: Scene, height: int, width: int | None = None) -> np.ndarray:
    """``scene`` rendered as ``uint8 (H, W, 3)`` RGB (``width`` defaults to ``height``)."""
    return Clip.from_scene(scene).render(0.0, height, width)


def render_caption(caption: str, size: int | tuple[int, int]) -> torch.Tensor:
    """The exact render of ``caption`` as a float tensor ``(3, H, W)`` in ``[-1, 1]``.

    ``size`` is the side of a square frame or ``(H, W)``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    return from_uint8(render_scene(parse_caption(caption), height, width))


# ----------------------------------------------------------------------------------------------
# Datasets


class CaptionImageDataset(Dataset):
    """``length`` random scenes: item ``i`` is ``(caption, image)`` with the canonical caption and its
    render, a float tensor ``(3, size, size)`` in ``[-1, 1]``; item ``i`` depends only on ``(seed, i)``."""

    def __init__(self, length: int, size: int, seed: int = 0) -> None:
        self.length, self.size, self.seed = length, size, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        _check_index(index, self.length)
        scene = Scene.random(np.random.default_rng([self.seed, index]))
        return scene.caption(), from_uint8(render_scene(scene, self.size))


class ClipFramesDataset(Dataset):
    """``length`` random clips rendered at ``times``; item ``i`` depends only on ``(seed, i)``.

    Kinds cycle through ``kinds``. Items are dicts: ``frames`` float ``(T, 3, size, size)`` in
    ``[-1, 1]``, ``times`` float ``(T,)``, ``flow_first_to_last`` float ``(2, size, size)`` in pixels
    (from ``times[0]`` to ``times[-1]``) and ``kind`` (str).
    """

    def __init__(self, length: int, size: int, times: Sequence[float], seed: int = 0,
                 kinds: Sequence[str] = CLIP_KINDS) -> None:
        unknown = [kind for kind in kinds if kind not in CLIP_KINDS]
        if unknown or not kinds or not times:
            raise InbetweenError(f"ClipFramesDataset needs at least one time and kinds from "
                                 f"{', '.join(CLIP_KINDS)}; got times={list(times)}, kinds={list(kinds)}.")
        self.length, self.size, self.seed = length, size, seed
        self.times, self.kinds = tuple(float(t) for t in times), tuple(kinds)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        _check_index(index, self.length)
        kind = self.kinds[index % len(self.kinds)]
        clip_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        clip = Clip.random(clip_seed, kind)
        return {
            "frames": torch.stack([from_uint8(clip.render(t, self.size)) for t in self.times]),
            "times": torch.tensor(self.times, dtype=torch.float32),
            "flow_first_to_last": torch.from_numpy(clip.flow(self.times[0], self.times[-1], self.size)),
            "kind": kind,
        }


def _check_index(index: int, length: int) -> None:
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")


# ----------------------------------------------------------------------------------------------
# Attribute reader

#: RGB distance from the background above which a pixel is taken as object when finding it.
_OBJECT_DISTANCE = 45.0
#: Rotational symmetries measured to tell shapes apart (triangle 3, square 4, star 5; circle none).
_FOLDS = (3, 4, 5)


def _as_uint8_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``uint8 (H, W, 3)`` from itself or from a float tensor ``(3, H, W)`` in ``[-1, 1]``."""
    if isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] == 3:
        return to_uint8(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InbetweenError("Images to read must be uint8 numpy arrays (H, W, 3) or float tensors (3, H, W) in [-1, 1]; "
                         f"got {type(image).__name__} of shape {getattr(image, 'shape', None)}.")


def _nearest(table: dict[str, Sequence[float]], value: Sequence[float]) -> str:
    """The key of ``table`` whose value is closest (Euclidean) to ``value``."""
    names = list(table)
    distances = np.linalg.norm(np.asarray(list(table.values()), float) - np.asarray(value, float), axis=1)
    return names[int(np.argmin(distances))]


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of a bool mask, or None if the mask is empty."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _read_background(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    """Background word (majority of border pixels by nearest palette colour) and its measured RGB."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    palette = np.asarray(list(BACKGROUNDS.values()), float)
    nearest = np.argmin(np.linalg.norm(border[:, None] - palette[None], axis=2), axis=1)
    winner = int(np.bincount(nearest, minlength=len(palette)).argmax())
    return list(BACKGROUNDS)[winner], np.median(border[nearest == winner], axis=0)


def _object_coverage(rgb: np.ndarray, background: np.ndarray) -> tuple[str, np.ndarray] | None:
    """The object's colour word and its coverage ``(H, W)`` in ``[0, 1]`` (zero off the object), or None.

    Coverage is each pixel's position on the line from the background colour to the object's
    palette colour, so anti-aliased edges count fractionally and sums give sub-pixel areas.
    """
    distance = np.linalg.norm(rgb - background, axis=2)
    blob = _largest_component(distance > _OBJECT_DISTANCE)
    if blob is None:
        return None
    core = blob & (distance >= np.median(distance[blob]))  # the more object-like half of the blob
    colour = _nearest(COLOURS, np.median(rgb[core], axis=0))
    direction = np.asarray(COLOURS[colour], float) - background
    coverage = np.clip((rgb - background) @ direction / (direction @ direction), 0.0, 1.0)
    body = _largest_component(coverage > 0.5)
    if body is None:
        return None
    near_body = cv2.dilate(body.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return colour, coverage * near_body


def _symmetries(weight: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Strength in ``[0, 1]`` of each n-fold rotational symmetry in :data:`_FOLDS` of a weighted blob.

    ``|sum w z^n| / sum w |z|^n`` with ``z`` the complex offset from the centroid: rotation and scale
    invariant, zero for a disc, large for the shape whose symmetry is ``n``.
    """
    z = (x - np.average(x, weights=weight)) + 1j * (y - np.average(y, weights=weight))
    return np.array([abs(np.sum(weight * z**n)) / np.sum(weight * abs(z) ** n) for n in _FOLDS])


@functools.cache
def _shape_signatures() -> dict[str, np.ndarray]:
    """Each shape's :func:`_symmetries`, computed on a fine point grid (the analytic values)."""
    y, x = np.mgrid[-1:1:601j, -1:1:601j]
    return {shape: _symmetries(_inside(shape, x, y).astype(float), x, y) for shape in SHAPES}


def read_attributes(image: np.ndarray | torch.Tensor) -> dict[str, str | None]:
    """Read ``size``, ``colour``, ``shape``, ``position``, ``background`` off an image of one object.

    ``image`` is ``uint8 (H, W, 3)`` or a float tensor ``(3, H, W)`` in ``[-1, 1]``. Object
    attributes are None when no object stands out from the background.
    """
    rgb = _as_uint8_image(image).astype(float)
    height, width = rgb.shape[:2]
    background, background_rgb = _read_background(rgb)
    found = _object_coverage(rgb, background_rgb)
    if found is None:
        return dict.fromkeys(SLOTS) | {"background": background}
    colour, coverage = found
    rows, cols = np.nonzero(coverage)
    weight, x, y = coverage[rows, cols], cols + 0.5, rows + 0.5
    shape = _nearest(_shape_signatures(), _symmetries(weight, x, y))
    centre = (np.average(x, weights=weight) / width, np.average(y, weights=weight) / height)
    radius = math.sqrt(weight.sum() / _AREA_FACTORS[shape]) / min(height, width)
    return {
        "size": _nearest({name: [math.log(r)] for name, r in SIZES.items()}, [math.log(radius)]),
        "colour": colour,
        "shape": shape,
        "position": _nearest(POSITIONS, centre),
        "background": background,
    }


def _attribute_hits(reads: Sequence[dict[str, str | None]], captions: Sequence[str]) -> np.ndarray:
    """``bool (N, 5)``: whether each read attribute (in ``SLOTS`` order) equals its caption's."""
    scenes = [parse_caption(caption) for caption in captions]
    return np.array([[read[slot] == getattr(scene, slot) for slot in SLOTS] for read, scene in zip(reads, scenes)])


def faithfulness(images: Sequence[np.ndarray | torch.Tensor] | torch.Tensor,
                 captions: Sequence[str]) -> dict[str, float]:
    """How well images show their captions: per-attribute accuracy and the share with all five right.

    ``images`` is a batch ``(B, 3, H, W)`` in ``[-1, 1]`` or a sequence of images :func:`read_attributes`
    accepts; ``captions`` has one caption per image. Returns floats in ``[0, 1]`` keyed by the
    attribute names and ``all_correct``.
    """
    if len(images) != len(captions) or len(captions) == 0:
        raise InbetweenError(f"faithfulness needs one caption per image and at least one of each; "
                             f"got {len(images)} images and {len(captions)} captions.")
    hits = _attribute_hits([read_attributes(image) for image in images], captions)
    scores = {slot: float(hits[:, k].mean()) for k, slot in enumerate(SLOTS)}
    return scores | {"all_correct": float(hits.all(axis=1).mean())}


IDENTITY = ("size", "colour", "shape")


def identity_scores(keyframes: Sequence[torch.Tensor], shots: Sequence[Sequence[str]]) -> dict[str, float]:
    """How well shots keep one object: the share of shots whose keyframes all read as one size, colour
    and shape (``identity_kept``), and of those whose keyframes are also all-correct (``consistent``).

    ``keyframes[i]`` holds shot ``i``'s images (``(K, 3, H, W)`` in ``[-1, 1]`` or uint8 ``(K, H, W, 3)``)
    and ``shots[i]`` its ``K`` captions.
    """
    kept, consistent = [], []
    for keys, prompts in zip(keyframes, shots):
        reads = [read_attributes(key) for key in keys]
        same = all(len({read[slot] for read in reads}) == 1 for slot in IDENTITY)
        kept.append(same)
        consistent.append(same and bool(_attribute_hits(reads, prompts).all()))
    return {"identity_kept": float(np.mean(kept)), "consistent": float(np.mean(consistent))}
