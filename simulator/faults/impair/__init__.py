"""``python -m simulator.faults.impair``: impair the link from this host to one destination, for a while.

    python -m simulator.faults.impair --dest 10.0.0.5 [--dport 5000] [--proto udp] --loss 5 --delay-ms 50 \\
        --jitter-ms 20 --reorder 25 --duration 20 [--method auto|netem|nfqueue] [--queue-num 7] [--log F.jsonl]

Packets this host *sends* to ``--dest`` (and ``--dport``/``--proto`` when given; ``--dport`` alone means
UDP) are dropped with probability ``--loss`` %, held for ``--delay-ms`` ± ``--jitter-ms`` (uniform), and,
when there is a delay, ``--reorder`` % of them are sent at once, ahead of the held ones (netem's
``reorder``). Jitter larger than the packet spacing reorders too, as with netem. After ``--duration``
seconds, or on SIGTERM/SIGINT, everything installed is removed (also on error) and the exit code is 0.
IPv4 only. Needs root (CAP_NET_ADMIN).

Two methods do the same thing, one module each: ``netem`` (kernel qdisc, netem.py) and ``nfqueue``
(userspace, over netfilter's NFQUEUE, nfqueue.py); each module's docstring says how it works and what
it costs.

``auto`` (default) probes netem by adding a netem qdisc to a throwaway veth pair (falling back to the
kernel config), uses netem when it works and nfqueue otherwise, and logs which and why.

``--log F.jsonl`` appends ``{"event":"start","method":..,"reason":..,"params":{..},"ts":..}`` once the
impairment is in place and ``{"event":"end","ts":..,"packets":N,"dropped":N,"delayed":N,"reordered":N,
"overflow":N,...}`` after it is removed (netem: delayed/reordered/overflow are null). A one-line summary
goes to stdout. Errors are one line on stderr naming the fix, exit code 2.

The package, one job per module: common.py (the parameters, the user-fixable error, the stop flag and
the command runner both methods share), netem.py, nfqueue.py, cli.py (flags, choosing the method, the
start/end log, exit codes) and __main__.py (``python -m``). The names below stay importable from here.
"""

from simulator.faults.impair.cli import main, parse_args
from simulator.faults.impair.common import ImpairError, Params, StopFlag, route_dev
from simulator.faults.impair.netem import Netem, netem_support
from simulator.faults.impair.nfqueue import NfQueue

__all__ = [
    "ImpairError",
    "Netem",
    "NfQueue",
    "Params",
    "StopFlag",
    "main",
    "netem_support",
    "parse_args",
    "route_dev",
]
