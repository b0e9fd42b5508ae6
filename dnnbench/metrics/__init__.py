"""Recorders (requests, steps, system), aggregation and CSV reports."""
