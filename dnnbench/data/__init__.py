"""Framework-neutral data: sample index, decoding, synthetic datasets, splitting."""
