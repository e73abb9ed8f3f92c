"""``python -m darts.sandbox.world --name small --seed 0 --root DIR``: build and report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from darts.sandbox.world import WORLD_NAMES, build_world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darts.sandbox.world")
    parser.add_argument("--name", choices=WORLD_NAMES, default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    layout = build_world(args.root, args.name, args.seed, progress=report)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in layout.root.rglob("*") if p.is_file())
    print(f"world {layout.root} ready in {seconds:.1f} s, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
