"""``inbetween studio``: the storyboard-to-video loop on a local web page.

Install the extra (``pip install -c constraints.txt -e ".[studio]"``), run ``inbetween studio`` and
open the address it prints. The page edits a storyboard, draws and redraws keyframes, fills the
motion and plays the video; every job is the ``inbetween generate`` command itself (see
:mod:`inbetween.studio.jobs`), writing an ordinary run folder under the workspace.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_PORT = 7860


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inbetween studio",
                                     description="The storyboard-to-video loop on a local web page.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other than loopback: anyone who reaches it can run jobs, read every "
                             "run and upload files")
    parser.add_argument("--workspace", type=Path, default=Path("studio"),
                        help="folder for runs and uploaded pictures (default ./studio)")
    return parser


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: Sequence[str]) -> int:
    """Serve the studio until Ctrl-C; returns the exit status."""
    options = _parser().parse_args(list(argv))
    if not _is_loopback(options.host) and not options.allow_remote:
        print(f"inbetween: error: --host {options.host} serves the studio beyond this machine: anyone who reaches "
              "it can run jobs, read every run and upload files. Add --allow-remote if that is what you want.",
              file=sys.stderr)
        return 2
    try:
        from werkzeug.serving import make_server  # noqa: PLC0415 - the optional extra

        from inbetween.studio.app import create_app  # noqa: PLC0415
    except ImportError as error:
        print(f"inbetween: error: the studio needs its extra ({error.name} is missing): "
              "pip install -c constraints.txt -e \".[studio]\"", file=sys.stderr)
        return 2
    try:
        server = make_server(options.host, options.port, create_app(options.workspace), threaded=True)
    except OSError as error:
        print(f"inbetween: error: cannot serve on {options.host}:{options.port} ({error.strerror}); "
              "choose another --port.", file=sys.stderr)
        return 2
    print(f"inbetween studio: http://{options.host}:{server.port}/  (runs in {options.workspace.resolve()}; "
          "Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("inbetween: studio stopped.", file=sys.stderr)
    return 0
