#!/usr/bin/env python3
"""dnnbench entry point: ``python3 benchmark.py --config config/quickstart.yaml``."""

from dnnbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
