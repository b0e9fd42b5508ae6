"""PyTorch adapters: map-style datasets, models, trainers and the epoch runner."""
