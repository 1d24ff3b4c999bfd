"""The trained weights that ship with inbetween, one folder per model (see each MODEL_CARD.md).

Installed as package data, so the defaults work from a clone and from ``pip install .``.
"""

from pathlib import Path


def shipped(name: str) -> Path:
    """The folder of the shipped model ``name`` (e.g. ``keyframes``)."""
    return Path(__file__).parent / name
