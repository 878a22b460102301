"""Hydra glue: the Hydra-aware pieces besides the entry point (``app.py``, ``summary.py``), the
schemas (``config.py``, ``validation.py``), the report's callback and the launcher plugin
(``hydra_plugins/``); the layers below take plain values.

- ``command``: the command line, parsed once before Hydra starts (flags, overrides, sweep or not,
  explicit folders, launcher, the sweep's jobs), read by every start-up check below;
- ``preflight``: every job of a command composes and validates before Hydra writes anything;
- ``register``: our schemas into Hydra's ConfigStore and our ``${resnet_exp.*:}`` resolvers;
- ``compose``: the config ``python -m resnet_exp <overrides>`` runs with, outside ``@hydra.main``;
- ``job``: this job's facts (run folder, overrides, sweep) from Hydra's runtime config;
- ``instantiate``: building a config node, with our one-paragraph error for a bad key;
- ``dry_sweep``: ``--multirun ... --cfg job`` (every job's config, nothing run);
- ``run_dir``: the ``${resnet_exp.fresh_dir:...}`` resolver behind each run's own folder;
- ``launchers``: launchers that need the ``scale`` extra, refused with the install command;
- ``resolvers``: ``${resnet_exp.local_jobs:}`` and joblib's ``n_jobs`` as jobs side by side;
- ``sweep_dirs``: one folder per sweep, claimed once (a job's folder: ``tracking/identity.py``);
- ``torchrun``: start-up under torchrun (one clock, one run folder, one writer of ``.hydra/``);
- ``internals``: the only module that touches Hydra's private API (pinned by tests).

Nothing under ``models/``, ``data/``, ``training/`` or ``tracking/`` imports Hydra or this package.
"""
