"""Model folders on disk: settings as JSON, weights as float16 safetensors, nothing pickled.

A model folder holds ``config.json`` (the constructor settings) beside one or more
``NAME.safetensors`` weight files. Weights are stored in float16 (half the size) and cast
back to float32 on load. Every file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from inbetween.errors import InbetweenError
from inbetween.video import atomic_path

CONFIG_FILE = "config.json"


def save_folder(folder: str | Path, config: dict[str, Any], modules: dict[str, nn.Module]) -> None:
    """Write ``config`` and each ``modules[NAME]``'s weights (as ``NAME.safetensors``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        weights = {key: tensor.detach().half().contiguous() for key, tensor in module.state_dict().items()}
        with atomic_path(folder / f"{name}.safetensors") as path:
            save_file(weights, str(path))
    with atomic_path(folder / CONFIG_FILE) as path:
        path.write_text(json.dumps(config, indent=2))


def read_config(folder: str | Path, weight_names: list[str], what: str, how_to_make: str) -> dict[str, Any]:
    """``folder``'s ``config.json``, after checking that it and every ``NAME.safetensors`` exist.

    ``what`` names the kind of folder and ``how_to_make`` says how to get one, for the error.
    """
    folder = Path(folder)
    needed = [CONFIG_FILE, *(f"{name}.safetensors" for name in weight_names)]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise InbetweenError(f"{str(folder)!r} is not {what} (missing {', '.join(missing)}); {how_to_make}.")
    return json.loads((folder / CONFIG_FILE).read_text())


def load_weights(module: nn.Module, folder: str | Path, name: str, skip_prefix: str | None = None) -> nn.Module:
    """Load ``folder/NAME.safetensors`` into ``module`` (cast to float32); returns ``module``.

    Every weight of ``module`` must be in the file, except those whose names start with ``skip_prefix``
    (a part the file predates), which keep their values.
    """
    weights = {key: tensor.float() for key, tensor in load_file(str(Path(folder) / f"{name}.safetensors")).items()}
    if skip_prefix is None:
        module.load_state_dict(weights)
        return module
    missing, unexpected = module.load_state_dict(weights, strict=False)
    stray = unexpected + [key for key in missing if not key.startswith(skip_prefix)]
    if stray:
        raise InbetweenError(f"{folder}/{name}.safetensors does not fit this network ({', '.join(stray[:5])}).")
    return module
