"""``python -m simulator.faults plan|collect`` (ansible/burst.yml): see simulator.faults.plan."""

import sys

from simulator.faults.plan import main

sys.exit(main())
