"""``python -m simulator.faults.impair``: run the impairer (simulator.faults.impair.cli)."""

import sys

from simulator.faults.impair.cli import main

if __name__ == "__main__":
    sys.exit(main())
