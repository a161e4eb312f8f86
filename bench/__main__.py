"""python -m bench [normalize] [ingest] [sender] [bots] [profile] (the consumer runtime is in
sender; profile times ingest's stages in process)"""

from __future__ import annotations

import importlib
import sys

BENCHES = ("normalize", "ingest", "sender", "bots", "profile")


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
