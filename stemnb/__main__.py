"""``python -m stemnb``: the tour with no arguments, ``python -m stemnb worker APP`` to run a worker (see ``_cli``)."""

from __future__ import annotations

import sys

from stemnb._cli import main
from stemnb._tour import main as tour

if __name__ == "__main__":
    sys.exit(main(tour=tour))
