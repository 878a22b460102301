"""Hydra glue: everything besides the entry points that touches Hydra, for the entry points; the
layers below take plain values, and the glue never imports the entry points. Its modules and what
each owns: ``docs/internals.md``."""
