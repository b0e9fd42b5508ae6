#!/usr/bin/env python3
"""dnnbench entry point: ``python3 benchmark.py --config config/quickstart.yaml``."""

if __name__ == "__main__":
    try:
        from dnnbench.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the package is still importing: no traceback
        raise SystemExit(130) from None
    raise SystemExit(main())
