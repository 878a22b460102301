"""The one Hydra-aware entry point: compose -> instantiate -> train -> record.

Everything below ``run`` takes plain objects; this module only turns the composed config into them and
decides what a failure means for the process (single run: exit code; multirun: a failed job that the
sweep report marks, while the other jobs go on).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from resnet_exp.config import register_configs
from resnet_exp.errors import UserError

register_configs()
log = logging.getLogger("resnet_exp")

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def _job_facts(cfg: DictConfig) -> dict:
    """Run directory, multirun flag, overrides and the W&B run name/group, from Hydra's runtime."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from resnet_exp.report.aggregate import sweep_id

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    # Absolute, so every job of a sweep (and the report run) lands in the same W&B group.
    group_dir = Path(hc.runtime.cwd, hc.sweep.dir if multirun else run_dir).resolve()
    return {
        "run_dir": run_dir,
        "multirun": multirun,
        "overrides": overrides,
        "name": ",".join(overrides) or "default",
        "group": sweep_id(group_dir),
        "choices": dict(hc.runtime.choices),
    }


def run(cfg: DictConfig, facts: dict) -> dict:
    """Train one configuration and return its summary (also written to summary.json)."""
    import torch
    from hydra.utils import instantiate

    from resnet_exp.models.profile import count_flops
    from resnet_exp.summary import input_shape
    from resnet_exp.tracking.record import RunRecord
    from resnet_exp.training.device import autocast_dtype, resolve_device
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.validation import validate

    started = time.time()
    run_dir: Path = facts["run_dir"]
    record = RunRecord(run_dir)
    summary: dict = {
        "status": "running",
        "error": None,
        "dataset": cfg.data.name,
        "seed": cfg.seed,
        "job": facts["name"],
        "overrides": facts["overrides"],
        "epochs_planned": cfg.trainer.epochs,
    }
    validate(cfg)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    dtype = autocast_dtype(cfg.trainer.precision, device)
    torch.manual_seed(cfg.seed)

    data = instantiate(cfg.data)
    data.setup(device=device, seed=cfg.seed)
    model = instantiate(cfg.model)
    model_facts = model.describe()
    model_facts["flops"] = count_flops(model, input_shape(cfg))
    summary["model"] = model_facts
    summary["data"] = data.describe()
    model = model.to(device)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if cfg.trainer.compile else model
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(
        optimizer, total_steps=cfg.trainer.epochs * data.steps_per_epoch
    )
    settings = LoopSettings(
        epochs=cfg.trainer.epochs,
        precision_dtype=dtype,
        channels_last=cfg.trainer.channels_last,
        checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
        progress=cfg.trainer.progress,
    )
    logger = instantiate(cfg.logger)
    trainer = Trainer(
        model, data, optimizer, scheduler, device, record, logger, settings,
        forward=forward, parts=model.parts(),
    )  # fmt: skip

    rows: list[dict] = []
    resume_path = _resume_path(cfg.trainer.resume, record.checkpoint_dir / "last.pt")
    if resume_path is not None:
        rows = trainer.resume(resume_path)
    record.write_summary(summary)

    tags = [
        model_facts["block"],
        f"depth-{model_facts['depth']}",
        cfg.data.name,
        "residual" if model_facts["residual"] else "plain",
    ]
    config = OmegaConf.to_container(cfg, resolve=True)
    logger.start(
        run_dir=run_dir, config=config, name=facts["name"], group=facts["group"], tags=tags
    )
    summary["wandb"] = logger.info()
    log.info(
        "%s-%d (%s, %s params, %.3f GFLOPs/img) on %s, %s; run dir %s",
        model_facts["block"],
        model_facts["depth"],
        model_facts["family"],
        f"{model_facts['params']:,}",
        model_facts["flops"] / 1e9,
        cfg.data.name,
        device,
        run_dir,
    )
    status = "failed"
    try:
        result = trainer.fit(rows)
        status = result.status
        summary.update(
            epochs=trainer.epoch,
            steps=trainer.step,
            final=result.rows[-1] if result.rows else None,
            best=result.best,
        )
    except BaseException as error:
        summary["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        summary["status"] = status if summary["error"] is None else "failed"
        summary["wall_time_s"] = time.time() - started
        record.write_summary(summary)
        logger.set_summary(_wandb_summary(summary))
        logger.finish(summary["status"])
        summary["wandb"] = logger.info()
        record.write_summary(summary)
    return summary


def _wandb_summary(summary: dict) -> dict:
    out = {"status": summary["status"], "params": summary["model"]["params"]}
    out["flops"] = summary["model"]["flops"]
    for prefix, row in (("final", summary.get("final")), ("best", summary.get("best"))):
        for key, value in (row or {}).items():
            out[f"{prefix}/{key}"] = value
    return out


def _resume_path(setting: str, last: Path) -> Path | None:
    setting = str(setting)
    if setting == "never":
        return None
    if setting == "auto":
        return last if last.exists() else None
    return Path(os.path.expanduser(setting))


def _fail(facts: dict, error: BaseException) -> None:
    """Record the failure in summary.json without touching anything else already written."""
    from resnet_exp.tracking.record import RunRecord

    record = RunRecord(facts["run_dir"])
    summary = record.read_summary()
    if summary.get("status") in (None, "running"):
        summary.update(status="failed", error=f"{type(error).__name__}: {error}")
        summary.setdefault("job", facts["name"])
        summary.setdefault("overrides", facts["overrides"])
        record.write_summary(summary)


def _user_error(error: BaseException) -> UserError | None:
    """The UserError behind ``error`` (Hydra wraps errors raised while instantiating)."""
    seen = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    facts = _job_facts(cfg)
    try:
        summary = run(cfg, facts)
    except Exception as error:
        _fail(facts, error)
        user_error = _user_error(error)
        if facts["multirun"]:
            raise  # the sweep goes on; Hydra reports the failed job and the report marks it
        if user_error is not None:
            log.error("%s", user_error)
            print(f"error: {user_error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        raise
    if summary["status"] == "diverged":
        message = (
            f"run diverged (non-finite training loss at epoch {summary['epochs']}); status "
            f"'diverged' recorded in {facts['run_dir'] / 'summary.json'}. Lower optimizer.lr "
            f"(now {cfg.optimizer.lr}) or add scheduler.warmup_steps."
        )
        log.error(message)
        if not facts["multirun"]:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_DIVERGED)
        return float("nan")
    best = summary.get("best") or {}
    return best.get("val/err", best.get("train/err"))


def _dry_sweep(args: list[str]) -> int:
    """``--multirun ... --cfg job``: print the config each job of the sweep would run with.

    Hydra itself refuses to combine ``--multirun`` with ``--cfg``; checking a sweep before launching it
    is exactly when a user wants both, so we expand the sweep and compose every job.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from resnet_exp.compose import compose

    what, resolve, overrides, i = "job", False, [], 0
    while i < len(args):
        arg = args[i]
        if arg in ("--cfg", "-c"):
            what, i = args[i + 1], i + 2
            continue
        if arg == "--resolve":
            resolve = True
        elif arg not in ("--multirun", "-m"):
            overrides.append(arg)
        i += 1
    # Sweep parameters a preset sets in hydra.sweeper.params, as Hydra's basic sweeper merges them:
    # the command line wins for a key it also names.
    base = compose(overrides, return_hydra_config=True)
    named = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    params = base.hydra.sweeper.get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items() if k not in named] + overrides
    parsed = OverridesParser.create().parse_overrides(overrides)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    if what not in ("job", "hydra", "all"):
        print(f"error: --cfg {what!r} is not a choice; valid: job, hydra, all.", file=sys.stderr)
        return EXIT_USER_ERROR
    for number, job in enumerate(jobs):
        cfg = compose(job, return_hydra_config=what != "job")
        if what == "hydra":
            cfg = cfg.hydra
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(OmegaConf.to_yaml(cfg, resolve=resolve))
    return 0


def entry() -> None:
    """Console script and ``python -m resnet_exp``."""
    args = sys.argv[1:]
    wants_cfg = any(a in ("--cfg", "-c") for a in args)
    multirun = any(a in ("--multirun", "-m") for a in args)
    # A preset may make itself a sweep (hydra.mode: MULTIRUN); --cfg then shows every job too.
    if wants_cfg and (multirun or any(a.startswith("experiment=") for a in args)):
        sys.exit(_dry_sweep(args))
    main()


if __name__ == "__main__":
    entry()
