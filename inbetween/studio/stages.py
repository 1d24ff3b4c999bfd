"""What the studio offers as stage choices: read from the same Hydra config groups as the command line.

Every ``conf/GROUP/NAME.yaml`` of the groups in :data:`GROUPS` is an option; its main options are its
top-level settings with a plain value (not ``_target_`` and the like), with the file's comment on the
line as their help. A new option file therefore appears in the page without a change here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import conf
from inbetween.errors import InbetweenError

GROUPS = ("keyframes", "flow", "interpolate")
CONFIG_FOLDER = Path(conf.__file__).parent
_SETTING_LINE = re.compile(r"^(?P<key>[a-z][a-z0-9_]*):[^#]*(#\s*(?P<help>.*))?$")
_SCALAR = (str, int, float, bool, type(None))


def _option(path: Path) -> dict[str, Any]:
    """One option file: ``{"name", "about", "settings": [{"key", "value", "help"}]}``."""
    text = path.read_text(encoding="utf-8")
    values = yaml.safe_load(text) or {}
    helps = {match["key"]: match["help"] or "" for line in text.splitlines() if (match := _SETTING_LINE.match(line))}
    about = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
    settings = [{"key": key, "value": value, "help": helps.get(key, "")} for key, value in values.items()
                if not key.startswith("_") and isinstance(value, _SCALAR) and not str(value).startswith("${")]
    return {"name": path.stem, "about": about, "settings": settings}


def stage_options() -> dict[str, Any]:
    """``{"groups": {GROUP: [option, ...]}, "defaults": {GROUP: NAME}}``, defaults as ``inbetween generate``'s."""
    defaults = {}
    for entry in yaml.safe_load((CONFIG_FOLDER / "generate.yaml").read_text(encoding="utf-8"))["defaults"]:
        if isinstance(entry, dict):
            defaults |= {group: name for group, name in entry.items() if group in GROUPS}
    groups = {group: [_option(path) for path in sorted((CONFIG_FOLDER / group).glob("*.yaml"))] for group in GROUPS}
    return {"groups": groups, "defaults": defaults}


def _override_value(value: Any) -> str:
    """A setting's value in Hydra's override grammar (strings quoted, so any text is one value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def stage_overrides(choices: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """Hydra overrides for the page's stage choices (``{GROUP: NAME}``) and settings
    (``{"GROUP.KEY": value}``); raises :class:`InbetweenError` naming an unknown choice or setting."""
    offered = stage_options()["groups"]
    overrides = []
    for group, name in choices.items():
        names = [option["name"] for option in offered.get(group, [])]
        if name not in names:
            raise InbetweenError(f"unknown stage choice {group}={name!r}; choose one of {names} "
                                 f"(the files in conf/{group}/).")
        overrides.append(f"{group}={name}")
    for dotted, value in settings.items():
        group, _, key = str(dotted).partition(".")
        chosen = next((option for option in offered.get(group, []) if option["name"] == choices.get(group)), None)
        if chosen is None or key not in [setting["key"] for setting in chosen["settings"]]:
            raise InbetweenError(f"unknown setting {dotted!r}: settings are GROUP.KEY of the chosen options' files "
                                 "in conf/ (e.g. keyframes.steps).")
        if not isinstance(value, _SCALAR):
            raise InbetweenError(f"setting {dotted} must be a number, text, true/false or null, got {value!r}.")
        overrides.append(f"{dotted}={_override_value(value)}")
    return overrides
