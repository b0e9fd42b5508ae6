"""Terminal output: rich console, progress bars, summary table, error rendering."""
