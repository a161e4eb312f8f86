"""python -m bench [normalize] [ingest] [sender] [bots] (the consumer runtime is in sender)"""

from __future__ import annotations

import importlib
import sys

BENCHES = ("normalize", "ingest", "sender", "bots")


def main() -> int:
    names = sys.argv[1:] or ["normalize"]
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
