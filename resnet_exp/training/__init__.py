"""Training: the loop, learning-rate schedules, checkpoints and per-epoch metrics."""
