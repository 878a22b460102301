"""resnet_exp's Hydra plugins, in Hydra's plugin namespace: the sweeper (``_sweeper``, the default
``hydra/sweeper=resnet_exp``) and, with the ``scale`` extra, the SLURM launcher (``_slurm``,
``hydra/launcher=slurm``). Hydra's plugin scan skips both (their names start with ``_``);
``resnet_exp.hydra_glue.register`` registers them, once, for every kind of install."""
