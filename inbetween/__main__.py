"""The ``inbetween`` command's entry point, also ``python -m inbetween COMMAND ...`` for launchers that
run a module, e.g. ``torchrun --nproc_per_node=2 -m inbetween train stage=keyframes``.

It loads :mod:`inbetween.cli` (torch, Hydra: a few seconds) with Ctrl-C held back: raised inside
torch's C++ import code, a KeyboardInterrupt aborts the process (pybind11 terminates it). A Ctrl-C
while it loads takes effect once the load ends: one line, exit status 130, as at any other time.
"""

import signal
import sys


def main() -> int:
    """Run :func:`inbetween.cli.main`; its exit status."""
    interrupted = []
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from inbetween.cli import main as run_command  # noqa: PLC0415 - loaded with Ctrl-C held back
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if interrupted:
            raise KeyboardInterrupt
        return run_command()
    except KeyboardInterrupt:
        print("inbetween: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
