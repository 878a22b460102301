"""submitit's SLURM launcher (``hydra/launcher=slurm``: :class:`SlurmConf`) with one change: a
job that dies without a result (SIGKILL, out of memory, node failure, ``scancel``) is a *failed
job* of the sweep - its ``summary.json`` says ``failed`` with SLURM's state (or ``job_error.json``),
the report is rebuilt, the sweep ends with an error - instead of an exception that throws away
every other job's result. That needs ``sacct`` (SLURM accounting). ``wait=false`` submits and
returns; a job still queued or running is not submitted again (:mod:`resnet_exp.slurm_queue`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurmLauncher,
)
from omegaconf import open_dict
from submitit.core.utils import FailedJobError, UncompletedJobError

from resnet_exp import slurm_queue
from resnet_exp.hydra_glue.folders import rank_overrides
from resnet_exp.hydra_glue.internals import hydra_config_of, submitit_hooks
from resnet_exp.report.callback import refresh_report
from resnet_exp.tracking.record import RunRecord, write_job_error

log = logging.getLogger("resnet_exp")


class DeadJobError(RuntimeError):
    """A SLURM job ended without returning a result (its process was killed)."""


@dataclass
class SlurmConf(SlurmQueueConf):
    """submitit's SLURM options plus ``wait`` (false: submit the sweep and return at once)."""

    _target_: str = "hydra_plugins.resnet_exp_launcher._slurm.SlurmLauncher"
    wait: bool = True


class SlurmLauncher(_SubmititSlurmLauncher):
    """submitit's SLURM launcher; jobs that died without a result are failed jobs."""

    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        jobs = [list(o) for o in job_overrides]
        queued = slurm_queue.still_queued(sweep_dir, jobs)  # {index: SLURM job id}
        for n, job_id in queued.items():
            log.info("#%d is SLURM job %s, still queued or running: not submitted again: %s",
                     initial_job_idx + n, job_id, " ".join(jobs[n]))  # fmt: skip
        todo = [n for n in range(len(jobs)) if n not in queued]
        submitted: list[tuple[str, list[str]]] = []
        dead: list[int] = []

        def record(array: list) -> None:  # submitted: keep the ids before waiting
            submitted.extend((str(j.job_id), list(j.submission().args[0])) for j in array)
            slurm_queue.record_submitted(sweep_dir, submitted)

        def results_or_failure(job: Any, results: Any) -> list:
            if not self.wait:  # detached: the job writes its own record; status follows it
                return [JobReturn(overrides=list(job.submission().args[0]),
                                  status=JobStatus.UNKNOWN)]  # fmt: skip
            try:
                return results(job)
            except (UncompletedJobError, FailedJobError) as error:
                dead.append(1)
                return [self._dead_job(job, error)]

        returns: list[Any] = [JobReturn(overrides=job, status=JobStatus.UNKNOWN) for job in jobs]
        if todo:
            with submitit_hooks(record, results_or_failure):
                done = super().launch([jobs[n] for n in todo], initial_job_idx)
            for n, ret in zip(todo, done):
                returns[n] = ret
        if dead:  # on_job_end never ran for a dead job; Hydra skips on_multirun_end after one
            refresh_report(self.config, "sweep report (with the dead job)")
        if not self.wait:
            _say_detached(sweep_dir, submitted, queued)
        return returns

    # -- in the SLURM job ----------------------------------------------------------------------
    def __call__(
        self, sweep_overrides: list[str], job_dir_key: str, job_num: int, *args: Any
    ) -> JobReturn:
        """Run the sweep job in each of the SLURM job's tasks. With ``tasks_per_node=N`` the N
        tasks are one DDP run: they join a process group from SLURM's environment (no torchrun)
        and only rank 0 writes Hydra's files, the log and the run record."""
        tasks = submitit.JobEnvironment().num_tasks
        if tasks > 1:
            from resnet_exp.training import distributed  # torch: only a multi-task job needs it

            submitit.helpers.TorchDistributedEnvironment().export(
                set_cuda_visible_devices=False, overwrite=True
            )
            dist, _ = distributed.init_from_env()
            sweep_overrides = rank_overrides(list(sweep_overrides), dist.rank)
        try:
            result = super().__call__(sweep_overrides, job_dir_key, job_num, *args)
        finally:
            if tasks > 1:
                distributed.shutdown()
        self._job_done = True
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook when SLURM signals a time-out or preemption: requeue the same job,
        which resumes from its last checkpoint. A signal that arrives after the job has finished
        (SLURM's timer is coarse) must not requeue it: None tells submitit not to."""
        if getattr(self, "_job_done", False):
            return None
        return super().checkpoint(*args, **kwargs)

    # -- in the submitting process ---------------------------------------------------------------
    def _dead_job(self, job: Any, error: Exception) -> JobReturn:
        overrides, job_num = list(job.submission().args[0]), int(job.submission().args[2])
        message = (
            f"SLURM job {job.job_id} ended in state {job.state} without a result: the process was "
            f"killed (e.g. out of memory, scancel, node failure) before the job finished. Its "
            f"output: {job.paths.stdout} and {job.paths.stderr}."
        )
        log.error("job #%d (%s): %s", job_num, " ".join(overrides), message)
        job_dir = self._job_dir(overrides, job_num, str(job.job_id))
        if job_dir is not None:
            _mark_failed(job_dir, overrides, message)
        ret = JobReturn(overrides=overrides, status=JobStatus.FAILED)
        ret.return_value = DeadJobError(message)
        ret.working_dir = str(job_dir) if job_dir else ""
        return ret

    def _job_dir(self, overrides: list[str], job_num: int, job_id: str) -> Path | None:
        """The job's output dir, resolved as the job itself resolved it (hydra.sweep.dir/subdir)."""
        assert self.config is not None and self.hydra_context is not None
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(cfg.hydra.job) as job:
                job.id, job.num = job_id, job_num
            with hydra_config_of(cfg):
                path = Path(str(cfg.hydra.sweep.dir), str(cfg.hydra.sweep.subdir))
        except Exception as exc:  # fall back on the default subdir (the job number)
            log.warning("could not resolve the job dir (%s); assuming <sweep dir>/%d", exc, job_num)
            path = Path(str(self.config.hydra.sweep.dir), str(job_num))
        return path if path.is_dir() else None


def _mark_failed(job_dir: Path, overrides: list[str], message: str) -> None:
    """summary.json -> failed (the job died while 'running'), or job_error.json if it wrote none."""
    record = RunRecord(job_dir)
    if record.read_summary() is not None:
        record.mark_failed(f"DeadJobError: {message}", overrides=overrides)
        return
    write_job_error(job_dir, "DeadJobError", message)


def _say_detached(sweep_dir: Path, submitted: list, queued: dict[int, str]) -> None:
    """What a detached sweep prints before it returns: the SLURM job ids and how to follow them."""
    ids = " ".join(job_id for job_id, _ in submitted) or "none"
    print(f"submitted {len(submitted)} SLURM jobs: {ids}", flush=True)
    if queued:
        print(f"still queued or running, not submitted again: {' '.join(queued.values())}")
    print(f"follow them: python -m resnet_exp.status {sweep_dir} --watch", flush=True)
    print("the last job to finish writes the sweep report (or: python -m resnet_exp.report "
          f"{sweep_dir})", flush=True)  # fmt: skip
