"""The ``inbetween`` command's entry point, also ``python -m inbetween COMMAND ...`` for launchers that
run a module, e.g. ``torchrun --nproc_per_node=2 -m inbetween train stage=keyframes``.

It loads :mod:`inbetween.cli` (torch, Hydra: a few seconds) only once it can catch Ctrl-C, so that
Ctrl-C while it loads also prints one line and exits with 130.
"""

import sys


def main() -> int:
    """Run :func:`inbetween.cli.main`; its exit status."""
    try:
        from inbetween.cli import main as run_command  # noqa: PLC0415 - loaded inside the Ctrl-C guard

        return run_command()
    except KeyboardInterrupt:
        print("inbetween: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
