"""python -m bench [normalize] [ingest] [sender] [bots] [profile] [soak] [ledger] [simulator]
[--minutes M] [--rate R] [--ids N] (the consumer runtime is in sender; profile times ingest's
stages in process; soak runs the whole system for minutes; ledger loads the sender's ledger of N
ids, whole and archived; simulator the provider simulator's sends and webhooks per provider; the
options after the names are theirs)"""

from __future__ import annotations

import importlib
import itertools
import sys

BENCHES = ("normalize", "ingest", "sender", "bots", "profile", "soak", "ledger", "simulator")


def main() -> int:
    names = list(itertools.takewhile(lambda arg: not arg.startswith("-"), sys.argv[1:]))
    names = names or ["normalize"]
    for name in names:
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
            return 2
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        result: int = module.main()
        if result:
            return result
    return 0


if __name__ == "__main__":
    sys.exit(main())
