"""Experiment trackers (W&B or none); empty, so importing it (and `logger=none`) stays cheap."""
