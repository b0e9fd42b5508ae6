"""Run directories and atomic appends to results/summary.csv (:mod:`.results`)."""
