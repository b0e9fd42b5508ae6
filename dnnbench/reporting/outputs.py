"""What ``compare`` writes into its folder: comparison.csv and, when asked, the plots.

Apart from :mod:`dnnbench.reporting.compare` so that compare never imports the plots
(which read a :class:`~dnnbench.reporting.compare.Comparison`): no import cycle, and
matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

from pathlib import Path

from dnnbench.reporting.compare import Comparison


def write_csv(c: Comparison, out_dir: Path) -> Path:
    """``comparison.csv``: one row per variant; per metric ``_mean, _stdev, _min, _max, _ratio``."""
    path = out_dir / "comparison.csv"
    c.table.to_csv(path, index=False, float_format="%.6g")
    return path


def write_outputs(c: Comparison, out_dir: Path, plots: bool = True) -> list[str]:
    """``comparison.csv`` and (``plots``) the three PNGs into ``out_dir``; returns notes on
    what a plot had to leave out."""
    write_csv(c, out_dir)
    if not plots:
        return []
    from dnnbench.reporting import plots as plotting

    return plotting.write_all(c, out_dir)[1]
