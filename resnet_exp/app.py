"""The one Hydra-aware entry point: compose -> instantiate -> train -> record.

Everything below ``run`` takes plain objects; this module only turns the composed config into them
and decides what a failure means for the process (single run: exit code; multirun: a failed job that
the sweep report marks, while the other jobs go on).
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
from resnet_exp.errors import EXIT_USER_ERROR, UserError

register_configs()
log = logging.getLogger("resnet_exp")

EXIT_DIVERGED = 3
# Test hook (tests/test_scale.py): the job whose overrides include this env var's value (e.g.
# "seed=2") SIGKILLs itself, as the kernel's OOM killer would, to prove a dead job is reported.
DIE_HOOK = "RESNET_EXP_TEST_SIGKILL_IF_OVERRIDE"


def _job_facts(cfg: DictConfig) -> dict:
    """Run directory, multirun flag, overrides and the W&B run name/group, from Hydra's runtime."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from resnet_exp.launcher import parallel_jobs
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
        # joblib's n_jobs: jobs of this sweep training side by side on this machine
        "parallel_jobs": parallel_jobs(OmegaConf.select(hc.launcher, "n_jobs")) if multirun else 1,
    }


def run(cfg: DictConfig, facts: dict) -> dict:
    """Train one configuration and return its summary (also written to summary.json)."""
    from resnet_exp.validation import validate

    validate(cfg, facts["run_dir"])  # before torch is even imported: a typo costs a second
    import torch
    from hydra.utils import instantiate

    from resnet_exp.models.profile import count_flops
    from resnet_exp.summary import input_shape
    from resnet_exp.tracking.replicates import wandb_job_type
    from resnet_exp.tracking.wandb_logger import NullLogger
    from resnet_exp.training import distributed
    from resnet_exp.training.device import resolve_device
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.responses import measure_and_write as measure_responses
    from resnet_exp.training.speed import choose as choose_speed

    started = time.time()
    run_dir: Path = facts["run_dir"]
    dist = distributed.current()
    record = distributed.record_for(dist, run_dir)
    summary: dict = {
        "status": "running",
        "error": None,
        "dataset": cfg.data.name,
        "seed": cfg.seed,
        "job": facts["name"],
        "overrides": facts["overrides"],
        "epochs_planned": cfg.trainer.epochs,
    }
    threads = distributed.thread_share(cfg.trainer.num_threads, facts.get("parallel_jobs", 1), dist)
    if threads:
        torch.set_num_threads(threads)
        log.info("torch intra-op threads: %d", threads)
    device = resolve_device(cfg.trainer.device)
    torch.manual_seed(cfg.seed)

    model = instantiate(cfg.model)  # first: a bad depth fails before data is read
    model_facts = model.describe()
    model_facts["flops"] = count_flops(model, input_shape(cfg))
    summary["model"] = model_facts
    data = instantiate(cfg.data)
    device = distributed.device_for(dist, device)
    data.setup(device=device, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    # precision/channels_last/compile, with `auto` resolved for this device (logged)
    speed = choose_speed(cfg.trainer, device, cfg.trainer.epochs * data.steps_per_epoch)
    summary["speed"] = speed.as_dict()
    summary["data"] = data.describe()
    model = model.to(device)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, trained = distributed.wrap_model(model, dist, device, cfg.trainer.sync_bn)
    forward = torch.compile(trained) if speed.compile else trained
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(
        optimizer, total_steps=cfg.trainer.epochs * data.steps_per_epoch
    )
    settings = LoopSettings(
        epochs=cfg.trainer.epochs,
        precision_dtype=speed.dtype,
        channels_last=speed.channels_last,
        checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
        log_every_steps=_log_every_steps(cfg.trainer.log_every_steps, cfg.trainer.epochs, data),
        progress=cfg.trainer.progress,
    )
    logger = instantiate(cfg.logger) if dist.is_main else NullLogger()  # rank 0 logs to W&B
    trainer = Trainer(
        model, data, optimizer, scheduler, device, record, logger, settings,
        forward=forward, parts=model.parts(), dist=dist if dist.enabled else None,
    )  # fmt: skip

    trainer.wall_start = started
    trainer.meta = {"config": _config_key(cfg)}
    chosen: dict = {}

    def decide() -> Path | None:
        found = _choose_checkpoint(cfg.trainer.resume, record.checkpoint_dir / "last.pt", device)
        chosen["state"] = found[1] if found else None
        return found[0] if found else None

    resume_path = distributed.agree_on_resume(dist, decide)
    rows = _start_or_resume(cfg, trainer, record, summary, resume_path, chosen.get("state"))
    record.write_summary(summary)

    tags = [
        model_facts["block"],
        f"depth-{model_facts['depth']}",
        cfg.data.name,
        "residual" if model_facts["residual"] else "plain",
    ]
    config = OmegaConf.to_container(cfg, resolve=True)
    logger.start(
        run_dir=run_dir, config=config, name=facts["name"], group=facts["group"], tags=tags,
        job_type=wandb_job_type(facts["overrides"]),
    )  # fmt: skip
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
        if status == "completed" and dist.is_main:
            measure_responses(model, data, cfg.trainer.response_images, run_dir)
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
        summary["wall_time_s"] = trainer.wall_time_s()  # all attempts of this run together
        record.write_summary(summary)
        logger.set_summary(_wandb_summary(summary))
        logger.finish(summary["status"])
        summary["wandb"] = logger.info()
        record.write_summary(summary)
    return summary


def _log_every_steps(setting: int | None, epochs: int, data) -> int:
    """trainer.log_every_steps, with null resolved to about 100 per-step rows per run."""
    if setting is not None:
        return int(setting)
    return max(1, epochs * data.steps_per_epoch // 100)


def _wandb_summary(summary: dict) -> dict:
    out = {"status": summary["status"], "params": summary["model"]["params"]}
    out["flops"] = summary["model"]["flops"]
    for prefix, row in (("final", summary.get("final")), ("best", summary.get("best"))):
        for key, value in (row or {}).items():
            out[f"{prefix}/{key}"] = value
    return out


def _test_hook(facts: dict) -> None:
    wanted = os.environ.get(DIE_HOOK)
    if wanted and wanted in facts["overrides"]:
        import signal

        log.warning("%s=%s: killing this job (SIGKILL) on purpose", DIE_HOOK, wanted)
        os.kill(os.getpid(), signal.SIGKILL)


def _choose_checkpoint(setting: str, last: Path, device) -> tuple[Path, dict] | None:
    """The checkpoint ``trainer.resume`` asks for, loaded: auto = last.pt, falling back to
    last.prev.pt when last.pt is damaged; an explicit path must load as is; never = none."""
    from resnet_exp.training.checkpoint import load_checkpoint, load_latest

    setting = str(setting)
    if setting == "never":
        return None
    if setting == "auto":
        return load_latest(last, map_location=device)
    path = Path(os.path.expanduser(setting))
    return path, load_checkpoint(path, map_location=device)


# What makes two attempts the same run: a checkpoint written under other values is not continued
# by trainer.resume=auto. Paths, loader workers and speed switches may change between attempts.
_RESUME_KEYS = ("seed", "model", "data", "optimizer", "scheduler", "trainer.epochs")
_RESUME_FREE = ("data.root", "data.download", "data.num_workers", "data.eval_batch_size")


def _config_key(cfg: DictConfig) -> str:
    import json

    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif prefix not in _RESUME_FREE:
            flat[prefix] = value

    for key in _RESUME_KEYS:
        node = OmegaConf.select(cfg, key)
        walk(key, OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)
    return json.dumps(flat, sort_keys=True, default=str)


def _start_or_resume(
    cfg: DictConfig, trainer, record, summary: dict, path: Path | None, state: dict | None
) -> list[dict]:
    """Load the chosen checkpoint into ``trainer`` (or start fresh) and note it in ``summary``."""
    import json

    previous = record.read_summary()
    if path is None:
        if record.metrics_path.exists():  # an attempt that died before its first checkpoint
            record.truncate_metrics(0)
        summary["attempts"] = 1
        return []
    if state is None:  # DDP ranks > 0 load the file rank 0 chose
        from resnet_exp.training.checkpoint import load_checkpoint

        state = load_checkpoint(path, map_location=trainer.device)
    saved = (state.get("meta") or {}).get("config")
    if saved is not None and saved != _config_key(cfg):
        old, new = json.loads(saved), json.loads(_config_key(cfg))
        diff = "; ".join(
            f"{k}={old.get(k, '(unset)')} there, {new.get(k, '(unset)')} now"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        )
        message = f"checkpoint {str(path)!r} was written by a different configuration ({diff})."
        if str(cfg.trainer.resume) == "auto":
            raise UserError(
                f"{message} trainer.resume=auto only continues the same run. Use a new "
                "hydra.run.dir for a new run, trainer.resume=never to start over in this folder "
                "(its checkpoints and metrics are replaced), or trainer.resume=<that path> to "
                "continue from it anyway."
            )
        log.warning("%s Continuing from it as trainer.resume asks.", message)
    rows = trainer.resume(path, state)
    trainer.wall_prior = max(trainer.wall_prior, float(previous.get("wall_time_s") or 0.0))
    summary["attempts"] = int(previous.get("attempts") or 1) + 1
    summary["resumed_from"] = {
        "path": str(path),
        "epoch": trainer.epoch,
        "step": trainer.step,
        "step_in_epoch": trainer.step_in_epoch,
    }
    summary["wall_time_s"] = trainer.wall_time_s()
    if trainer.epoch >= cfg.trainer.epochs:
        log.info("checkpoint %s is at the final epoch %d: nothing to train", path, trainer.epoch)
    return rows


def _fail(facts: dict, error: BaseException, rank_check: bool = True) -> None:
    """Record the failure in summary.json without touching anything else already written."""
    from resnet_exp.tracking.record import RunRecord

    if rank_check:
        from resnet_exp.training import distributed

        if not distributed.current().is_main:
            return  # rank 0 records the run
    record = RunRecord(facts["run_dir"])
    summary = record.read_summary()
    if summary.get("status") in (None, "running"):
        summary.update(status="failed", error=f"{type(error).__name__}: {error}")
        summary.setdefault("job", facts["name"])
        summary.setdefault("overrides", facts["overrides"])
        record.write_summary(summary)


def _validate_before_torch(cfg: DictConfig) -> None:
    """Check values before torch is imported, so a typo is reported in about a second.

    A single run records the failure (summary.json, status failed) and exits 2; in a multirun the
    job raises as any failed job does (run() would find the same error).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from resnet_exp.validation import InvalidConfig, validate

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        return  # run() validates; the sweep's failure path handles it
    run_dir = Path(hc.runtime.output_dir)
    try:
        validate(cfg, run_dir)
    except InvalidConfig as error:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 keeps the record
            overrides = list(hc.overrides.task)
            _fail({"run_dir": run_dir, "name": ",".join(overrides) or "default",
                   "overrides": overrides}, error, rank_check=False)  # fmt: skip
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


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
    _validate_before_torch(cfg)
    from resnet_exp.training import distributed

    facts = _job_facts(cfg)
    facts["run_dir"] = distributed.agree_on_run_dir(distributed.current(), facts["run_dir"])
    _test_hook(facts)
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
            f"run diverged (non-finite training loss or weights in epoch {summary['epochs']}); "
            f"status 'diverged' recorded in {facts['run_dir'] / 'summary.json'}. Lower "
            f"optimizer.lr (now {cfg.optimizer.lr}) or add scheduler.warmup_steps."
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

    Hydra itself refuses to combine ``--multirun`` with ``--cfg``; checking a sweep before
    launching it is exactly when a user wants both, so we expand the sweep and compose every job.
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
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    base = compose(fixed, return_hydra_config=True)
    named = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    params = base.hydra.sweeper.get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items() if k not in named] + overrides
    parsed = parser.parse_overrides(overrides)
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
    from resnet_exp.run_dir import check_explicit_run_dir

    check_explicit_run_dir(args)
    if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        main()
        return
    # Under torchrun: join the process group and agree on the run dir before Hydra starts.
    from resnet_exp.training import distributed

    _, sys.argv[1:] = distributed.init_from_env(args)
    try:
        main()
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    entry()
