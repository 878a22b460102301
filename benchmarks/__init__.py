"""Benchmarks: ``python -m benchmarks`` (all, small size) or ``python -m benchmarks.<name>``.

Every benchmark measures its variants interleaved (A, B, A, B, ...) in one process and reports
medians and ratios, so a machine shared with other work still gives comparable numbers; the load
average is recorded next to them. Results go to ``benchmarks/results/<name>.json`` (git-ignored).
"""
