"""Reading and writing frames: PNG images, H.264 mp4, GIF, contact sheets.

Conventions: tensors are float RGB in ``[-1, 1]``; arrays handed to writers are uint8
RGB ``(H, W, 3)`` or ``(T, H, W, 3)``. Every writer writes to a temporary name in the
target's folder and renames it into place, so an interrupted run never leaves a file
that looks complete.

Video goes through the ffmpeg binary that ``imageio-ffmpeg`` ships (it has libx264 and
``minterpolate``): OpenCV's wheels cannot write H.264.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch

from inbetween.errors import InbetweenError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(..., 3, H, W)`` floats in ``[-1, 1]`` -> uint8 ``(..., H, W, 3)``, rounded."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.movedim(-3, -1).numpy()


def from_uint8(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(..., 3, H, W)`` in ``[-1, 1]``; a tensor stays on its device."""
    if not isinstance(pixels, torch.Tensor):
        pixels = torch.from_numpy(np.ascontiguousarray(pixels))
    return pixels.movedim(-1, -3).float() / 127.5 - 1


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On failure the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8 RGB ``(H, W, 3)`` as an 8-bit PNG, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a PNG of shape {pixels.shape}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB ``(H, W, 3)``.

    Grey images are expanded to RGB, alpha is dropped, 16-bit images are scaled to 8 bits.
    Raises :class:`InbetweenError` for a missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InbetweenError(f"image '{path}' does not exist. Check the path (it is read relative to the current folder).")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise InbetweenError(
            f"image '{path}' could not be read: it is not an image format OpenCV can decode "
            "(use PNG or JPEG)."
        )
    if pixels.dtype == np.uint16:
        pixels = (pixels / 257).round().astype(np.uint8)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    conversion = cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, conversion)


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of uint8 ``(..., H, W, 3)`` by an integer factor."""
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


#: ``output.scale: auto`` upscales frames whose short side is below this many pixels.
VIEWING_SHORT_SIDE = 256


def viewing_scale(scale: int | str, height: int, width: int) -> int:
    """The whole upscale factor of the viewing copies (mp4, gif) of ``height x width`` frames.

    ``scale`` is a whole number of at least 1, or ``"auto"``: the smallest whole factor that
    brings the short side to at least :data:`VIEWING_SHORT_SIDE` pixels (1 for larger frames).
    """
    if scale == "auto":
        return max(1, math.ceil(VIEWING_SHORT_SIDE / min(height, width)))
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise InbetweenError(f"output.scale must be 'auto' or a whole number of at least 1, got {scale!r}.")
    return scale


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Edge-pad ``(..., H, W, 3)`` so H and W are even (yuv420p needs it)."""
    pad_h, pad_w = frames.shape[-3] % 2, frames.shape[-2] % 2
    padding = [(0, 0)] * (frames.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    return np.pad(frames, padding, mode="edge")


@contextlib.contextmanager
def mp4_writer(path: str | os.PathLike, height: int, width: int, fps: float) -> Iterator[Callable[[np.ndarray], None]]:
    """Stream uint8 ``(H, W, 3)`` frames into an H.264 mp4 (yuv420p, faststart) that browsers play.

    Yields ``send(frame)``; the file appears at ``path`` only when the block ends without error.
    """
    even_height, even_width = height + height % 2, width + width % 2
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (even_width, even_height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            quality=None,
            output_params=["-crf", "16", "-preset", "medium", "-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            yield lambda frame: writer.send(np.ascontiguousarray(_pad_to_even(frame)))
        finally:
            writer.close()


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Write uint8 ``(T, H, W, 3)`` as H.264 (yuv420p, faststart) that browsers play."""
    with mp4_writer(path, *frames.shape[1:3], fps) as send:
        for frame in frames:
            send(frame)


def write_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> None:
    """Write uint8 frames ``(H, W, 3)`` as a looping GIF."""
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, list(frames), extension=".gif", duration=1000.0 / fps, loop=0)


def probe_video(path: str | os.PathLike) -> dict:
    """Codec name and frame size of a video file, from ffmpeg's stream description.

    Returns ``{"codec": str, "width": int, "height": int}``.
    """
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Video: (\w+).*?, (\d+)x(\d+)", result.stderr)
    if match is None:
        raise InbetweenError(f"'{path}' has no video stream ffmpeg can read.")
    return {"codec": match.group(1), "width": int(match.group(2)), "height": int(match.group(3))}


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def find_videos(paths: Sequence[str | os.PathLike], setting: str) -> list[Path]:
    """The video files among ``paths`` (files, or folders whose videos are taken in name order).

    ``setting`` names the config key the paths came from, for the error raised when a path
    does not exist or no video is found.
    """
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found += sorted(p for p in entry.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif entry.is_file():
            found.append(entry)
        else:
            raise InbetweenError(f"video path '{entry}' does not exist. Give video files or folders of them in "
                                 f"{setting} (the default real data folder is $INBETWEEN_DATA, else "
                                 "../shared/data/real beside the repository).")
    if not found:
        raise InbetweenError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) found in {setting}={list(paths)}.")
    return found


def read_video(path: str | os.PathLike, max_frames: int | None = None, first_frame: int = 0) -> np.ndarray:
    """Decode a video file to uint8 ``(T, H, W, 3)``: its frames from ``first_frame`` on, at most
    ``max_frames`` of them (``T`` is 0 where the video ends before ``first_frame``)."""
    path = Path(path)
    if not path.is_file():
        raise InbetweenError(f"video '{path}' does not exist.")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    frames = []
    for index, raw in enumerate(reader):
        if index < first_frame:
            continue
        frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
        if max_frames is not None and len(frames) >= max_frames:
            reader.close()
            break
    return np.stack(frames) if frames else np.empty((0, height, width, 3), np.uint8)


def _wrap_words(text: str, font_scale: float, max_width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``max_width`` pixels wide."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        width = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0]
        if lines and width <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4,
                  tile: int = 256) -> np.ndarray:
    """Tile keyframes with their captions underneath: uint8 RGB ``(H, W, 3)``.

    Each image is scaled (nearest neighbour) to fit a ``tile``-pixel-wide cell; the cell
    shows its index and caption in wrapped text on white.
    """
    font_scale, line_height, margin = 0.45, 16, 6
    cells = []
    for index, (image, caption) in enumerate(zip(images, captions)):
        height, width = image.shape[:2]
        fitted_height = max(1, round(height * tile / width))
        fitted = cv2.resize(image, (tile, fitted_height), interpolation=cv2.INTER_NEAREST)
        lines = _wrap_words(f"{index:02d}: {caption}", font_scale, tile - 2 * margin)
        text_area = np.full((margin * 2 + line_height * len(lines), tile, 3), 255, np.uint8)
        for row, line in enumerate(lines):
            baseline = margin + line_height * (row + 1) - 4
            cv2.putText(text_area, line, (margin, baseline), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(np.concatenate([fitted, text_area]))
    columns = min(columns, len(cells))
    cell_height = max(cell.shape[0] for cell in cells)
    cells = [np.pad(c, ((0, cell_height - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cells]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
    sheet = np.concatenate(rows, axis=0)
    return np.pad(sheet, ((4, 4), (4, 4), (0, 0)), constant_values=255)
