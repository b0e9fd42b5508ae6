"""What if: predict throughput over a grid from one short probe (issue 18)."""
