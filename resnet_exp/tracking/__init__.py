"""Experiment trackers (W&B or none).

Deliberately empty: `wandb` is imported lazily when a run starts, so importing this package (and
`logger=none` runs) stays cheap.
"""
