"""Hydra glue: the Hydra-aware pieces besides the entry point (``app.py``, ``summary.py``), the
schemas (``config.py``, ``validation.py``), the report's callback and our plugins
(``hydra_plugins/``); the layers below take plain values. It never imports the entry points.

- ``register``: our schemas, ``${resnet_exp.*:}`` resolvers and plugins made known to Hydra, once;
- ``command``: the command line, parsed once before Hydra starts (flags, overrides, sweep or not,
  explicit folders, launcher, the sweep's jobs), read by every start-up check below;
- ``compose``: the config ``python -m resnet_exp <overrides>`` runs with, outside ``@hydra.main``,
  and building a config node with our one-paragraph error for a bad key;
- ``preflight``: every job of a command composes and validates before Hydra writes anything;
  ``--multirun ... --cfg job`` (every job's config, nothing run);
- ``folders``: a run's and a sweep's own folder, one writer each, put back after a failed start;
- ``launchers``: what each launcher can do here (``LauncherTraits``), joblib's default ``n_jobs``,
  the launchers the ``scale`` extra brings;
- ``gpu_slots``: a joblib sweep's jobs spread over the node's GPUs;
- ``job``: this job's facts (run folder, overrides, sweep) from Hydra's runtime config; torchrun;
- ``sweep_failures``: failed jobs, fail-fast, workers that end with the sweep's process;
- ``internals``: the only module that touches Hydra's or submitit's private API (pinned by tests).

Nothing under ``models/``, ``data/``, ``training/`` or ``tracking/`` imports Hydra or this package.
"""
