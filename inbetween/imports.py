"""Importing libraries that import torchvision, where torchvision's C++ operators do not load.

The only torchvision on the registry that matches CPU torch 2.13 is a CUDA build whose C++
operators cannot load beside the CPU torch, so ``import torchvision`` stops at ``operator
torchvision::nms does not exist``. open_clip, transformers and diffusers need only torchvision's
Python side (transforms, image processors); declaring the two operator schemas its Python side
registers fakes for lets the import finish. Calling ``nms`` would still fail (nothing here does).
Where torchvision imports normally, nothing special happens.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch


def _define_missing_torchvision_ops() -> None:
    """Declare ``torchvision::nms`` and ``torchvision::qnms`` (their schemas only)."""
    library = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _define_missing_torchvision_ops.library = library  # keep the registration alive


def _make_torchvision_importable() -> None:
    try:
        import torchvision  # noqa: F401, PLC0415
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        _define_missing_torchvision_ops()
    except ImportError:  # no torchvision at all: the library imports without it, or says what it needs
        pass


def import_beside_torchvision(module: str) -> ModuleType:
    """``import MODULE`` (e.g. ``open_clip``, ``diffusers``), first making torchvision importable if its
    C++ operators do not load (see the module docstring)."""
    if not hasattr(_make_torchvision_importable, "done"):
        _make_torchvision_importable()
        _make_torchvision_importable.done = True
    return importlib.import_module(module)
