"""From records to results: the column catalogue, the run's CSVs and summary row, the
multi-rank aggregate, compare, the regression gate and the plots."""
