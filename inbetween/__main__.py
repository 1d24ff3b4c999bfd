"""``python -m inbetween COMMAND ...``: the ``inbetween`` command, for launchers that run a
module, e.g. ``torchrun --nproc_per_node=2 -m inbetween train stage=keyframes``."""

import sys

from inbetween.cli import main

if __name__ == "__main__":
    sys.exit(main())
