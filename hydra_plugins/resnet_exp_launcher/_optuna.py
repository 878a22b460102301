"""An Optuna 5 sweeper (``hydra/sweeper=optuna``, extra ``tune``) without a batch barrier: each of
``n_jobs`` slot threads launches one-job batches and asks for the next trial as its job ends.
Trials are ordinary jobs; the study is a journal in the sweep folder (or an RDB URL) that the same
command resumes. ``conf/hydra/sweeper/optuna.yaml`` and docs/internals.md say the rest."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.types import IntervalSweep
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hydra_plugins.resnet_exp_launcher import _sweeper
from hydra_plugins.resnet_exp_launcher._pruning import Pruning
from resnet_exp.atomic import atomic_write
from resnet_exp.hydra_glue import sweep_failures as sf
from resnet_exp.hydra_glue.command import parse_overrides
from resnet_exp.hydra_glue.internals import split_sweep
from resnet_exp.hydra_glue.launchers import launcher_traits, parallel_jobs
from resnet_exp.tracking.folder_lock import in_use
from resnet_exp.tracking.identity import override_key
from resnet_exp.tracking.record import MULTIRUN_YAML, OPTUNA_JOURNAL, TUNED_JSON, RunRecord

log = logging.getLogger("resnet_exp")
optuna.logging.set_verbosity(optuna.logging.WARNING)  # our log says what each trial did
OWNER = "resnet_exp.sweep_dir"  # a trial's user attr: the sweep folder whose process runs it


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler minus ``Study.stop`` at the grid's end (valid only in optimize)."""

    def after_trial(self, *args: Any) -> None:
        pass


#: and grid (GridSampler): launchers.OPTUNA_CHOICES, which the preflight checks
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


@dataclass
class Space:  # a sweep's overrides by role
    combos: list[list[str]]
    replicates: list[list[str]]
    fixed: list[str]
    search: dict[str, Any]


def read_space(overrides: Sequence[str], each: Sequence[str], replicates: Sequence[str]) -> Space:
    """Hydra's ``interval`` (``tag(log,...)``, ``tag(int,...)``) becomes a range, any other
    sweep (``choice``, ``range``, ``a,b``) a category; ``each``/``replicates`` keys are not."""
    roles: dict[str, list[str]] = {"each": [], "replicates": []}
    fixed, search = [], {}
    for o in parse_overrides(list(overrides)):
        key = o.key_or_group
        if key in each or key in replicates:
            roles["each" if key in each else "replicates"].append(o.input_line)
        elif isinstance(o.value(), IntervalSweep):
            v = o.value()
            kind = IntDistribution if "int" in v.tags else FloatDistribution
            cast = int if kind is IntDistribution else float
            search[o.get_key_element()] = kind(cast(v.start), cast(v.end), log="log" in v.tags)
        elif o.is_sweep_override():
            search[o.get_key_element()] = CategoricalDistribution(list(o.sweep_iterator()))
        else:
            fixed.append(o.input_line)
    # as Hydra's sweeper writes them (false -> False), so a job is named as its sweep lists it
    combos, reps, (fixed,) = (split_sweep(x) if x else [[]] for x in (*roles.values(), fixed))
    return Space(combos, reps, fixed, search)


def as_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in params.items()]


@dataclass(eq=False)  # hashable by identity
class Plan:
    """One study, and the jobs that run at its best parameters once it has its trials."""

    study: Any
    fixed: list[str]  # every trial's overrides besides its parameters
    replicates: list[list[str]]
    baseline: dict[str, Any]
    released: bool = False
    tuned: list[str] = field(default_factory=list)  # job folders run at the best params
    at_baseline: list[str] = field(default_factory=list)

    def follow_ups(self) -> list[tuple[str, list[str]]]:
        if not any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
            log.warning("study %s has no completed trial: no replicates", self.study.study_name)
            return []
        rep = {override_key(o) for r in self.replicates for o in r}
        base = [o for o in self.fixed if override_key(o) not in rep]
        best, baseline = as_overrides(self.study.best_params), as_overrides(self.baseline)
        same = best == baseline  # the same jobs (a folder each): run once, counted for both
        jobs = [("both" if same else "tuned", [*base, *best, *r]) for r in self.replicates]
        if self.baseline and not same:
            jobs += [("baseline", [*base, *baseline, *r]) for r in self.replicates]
        return jobs


@dataclass
class Item:
    plan: Plan
    kind: str  # trial | tuned | baseline | both
    job: list[str]
    trial: int | None = None
    index: int = 0  # the job's number in this sweep (Hydra's hydra.job.num)
    pruned: bool = False


class Driver:
    """``n_jobs`` slots asking trials, then follow-ups; ``launch(job, n)`` -> (value, folder)."""

    def __init__(self, plans: list[Plan], search: dict[str, Any], n_trials: int, n_jobs: int,
                 launch: Callable[[list[str], int], tuple[float | None, str]], owner: str,
                 folder: Path | None = None, stop: Callable[[], bool] = lambda: False,
                 ask_lock: Any = None, watch: Any = None) -> None:  # fmt: skip
        self.plans, self.search, self.n_trials, self.n_jobs = plans, search, n_trials, n_jobs
        self.launch, self.owner, self.folder, self.stop = launch, owner, folder, stop
        self.ask_lock = ask_lock or contextlib.nullcontext()
        self.watch = watch or (lambda item: contextlib.nullcontext())  # Pruning, with a pruner
        self.cond, self.claimed, self.queue = threading.Condition(), set(), []
        self.index, self.timeline = 0, []

    def run(self) -> list[dict[str, Any]]:
        self._write_tuned()  # marks the folder a search at once (status lists no planned job)
        slots = [threading.Thread(target=self._slot, args=(n,), daemon=True)
                 for n in range(self.n_jobs)]  # fmt: skip
        for slot in slots:
            slot.start()
        try:
            for slot in slots:
                while slot.is_alive():  # a timed join: the main thread takes the signals
                    slot.join(0.5)
        except BaseException:  # a signal: no slot starts another job
            self.stop = lambda: True
            raise
        self._write_tuned(done=not self.stop())
        return self.timeline

    def _slot(self, slot: int) -> None:
        while (item := self._next()) is not None:
            start = time.time()
            try:
                with self.watch(item) if item.kind == "trial" else contextlib.nullcontext():
                    value, folder = self.launch(item.job, item.index)
            except BaseException:
                value, folder = None, ""
                log.exception("job %s", " ".join(item.job))
            row = {"slot": slot, "kind": item.kind, "trial": item.trial, "job": item.job,
                   "study": item.plan.study.study_name, "value": value, "start": start}  # fmt: skip
            with self.cond:
                self.timeline.append({**row, "end": time.time()})
                self._finish(item, value, folder)
                self.cond.notify_all()

    def _finish(self, item: Item, value: float | None, folder: str) -> None:
        if item.kind == "trial":
            ok = value is not None and value == value  # NaN: diverged
            state = (
                TrialState.PRUNED if item.pruned else TrialState.COMPLETE if ok else TrialState.FAIL
            )
            item.plan.study.tell(item.trial, value if state == TrialState.COMPLETE else None,
                                 state=state)  # fmt: skip
            params = " ".join(item.job[len(item.plan.fixed) :])
            log.info("trial %d of %s: %s -> %s (%s)", item.trial, item.plan.study.study_name,
                     params, value, state.name.lower())  # fmt: skip
        if item.kind in ("tuned", "both"):
            item.plan.tuned.append(folder)
        if item.kind in ("baseline", "both"):
            item.plan.at_baseline.append(folder)
        self._write_tuned()

    def _next(self) -> Item | None:
        with self.cond:
            while not self.stop():
                with self.ask_lock:  # count and ask as one step for every process
                    item = next(filter(None, (self._trial(p) for p in self.plans)), None)
                for plan in self.plans:
                    if item is None and not plan.released and self._searched(plan):
                        plan.released = True
                        self.queue += [Item(plan, k, job) for k, job in plan.follow_ups()]
                if item is None and self.queue:
                    item = self.queue.pop(0)
                if item is not None:
                    item.index, self.index = self.index, self.index + 1
                    return item
                if all(p.released for p in self.plans):
                    return None
                self.cond.wait(timeout=2.0)  # trials in flight here or in another process
            return None

    def _searched(self, plan: Plan) -> bool:
        trials = plan.study.get_trials(deepcopy=False)
        running = any(t.state == TrialState.RUNNING for t in trials)
        return self._counted(trials) >= self.n_trials and not running

    def _counted(self, trials: Sequence[Any]) -> int:
        """Trials asked (a failed one without its parameters, killed while asked, is none)."""
        return sum(t.state != TrialState.WAITING and (bool(t.params) or not self.search)
                   for t in trials)  # fmt: skip

    def _trial(self, plan: Plan) -> Item | None:
        """A trial a gone sweep left running (this folder's, or one whose folder lock is free),
        run again under its number; else a new one (asked and owned under the ask lock)."""
        trials = plan.study.get_trials(deepcopy=False)
        for t in trials:
            owner = t.user_attrs.get(OWNER)
            gone = owner in (self.owner, None) or (Path(owner).is_dir() and not in_use(Path(owner)))
            if t.state == TrialState.RUNNING and gone and (plan, t.number) not in self.claimed:
                self.claimed.add((plan, t.number))
                if set(t.params) != set(self.search):  # killed while asked: not a trial yet
                    plan.study.tell(t.number, state=TrialState.FAIL)
                    continue
                log.info("trial %d of %s was left running by a sweep that stopped: run again",
                         t.number, plan.study.study_name)  # fmt: skip
                return Item(plan, "trial", [*plan.fixed, *as_overrides(t.params)], t.number)
        if self._counted(trials) >= self.n_trials:
            return None
        trial = plan.study.ask(self.search)
        trial.set_user_attr(OWNER, self.owner)
        self.claimed.add((plan, trial.number))
        return Item(plan, "trial", [*plan.fixed, *as_overrides(trial.params)], trial.number)

    def _write_tuned(self, done: bool = False) -> None:
        """``tuned.json``, read by the report's tuned section and ``status`` (no Optuna there)."""
        if self.folder is None:
            return
        studies = [{"study": p.study.study_name, "baseline": p.baseline, "tuned_jobs": p.tuned,
                    "baseline_jobs": p.at_baseline,
                    "trials": [{"number": t.number, "params": t.params, "value": t.value,
                                "state": t.state.name}
                               for t in p.study.get_trials(deepcopy=False)]}
                   for p in self.plans]  # fmt: skip
        text = json.dumps({"studies": studies, "timeline": self.timeline, "done": done,
                           "n_trials": self.n_trials * len(self.plans)}, indent=1)  # fmt: skip
        atomic_write(self.folder / TUNED_JSON, text.encode())


class FlockLock:
    """Journal and ask lock as ``flock``: a killed holder's goes (Optuna's lock stays 30 s)."""

    def __init__(self, path: str) -> None:
        self.path, self.fd = path + ".lock", -1

    def acquire(self) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return True

    def release(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the lock

    __enter__, __exit__ = acquire, release


def storage_for(url: str | None, sweep_dir: Path) -> tuple[Any, Any]:
    """A journal (default: in the sweep folder) or an RDB URL, and the lock that makes counting and
    asking one step for every process (on an RDB each process may overshoot by a trial)."""
    if url and "://" in url:
        return url, contextlib.nullcontext()
    path = str(Path(url) if url else sweep_dir / OPTUNA_JOURNAL)
    backend = JournalFileBackend(path, lock_obj=FlockLock(path))
    return optuna.storages.JournalStorage(backend), FlockLock(path + ".ask")


class OptunaSweeper(_sweeper.ResnetExpSweeper):
    """``hydra/sweeper=optuna`` (``conf/hydra/sweeper/optuna.yaml`` explains each option); its
    launcher is set up as the default sweeper's."""

    def __init__(self, **options: Any) -> None:
        self.o = _sweeper.OptunaConf(**options)

    def sweep(self, arguments: list[str]) -> Any:
        o, sweep_dir = self.o, Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / MULTIRUN_YAML)
        (sweep_dir / sf.STOP_MARKER).unlink(missing_ok=True)  # an earlier launch's stops nothing
        named = {override_key(a) for a in arguments}  # the command line wins, as in Hydra's
        params = [f"{k}={v}" for k, v in (o.params or {}).items() if k not in named]
        space = read_space([*params, *arguments], o.each, o.replicates)
        storage, ask_lock = storage_for(o.storage, sweep_dir)
        follow = space.replicates if o.replicates else []  # none: the search is the sweep
        fixed, baseline = [*space.replicates[0], *space.fixed], dict(o.baseline or {})
        plans = [Plan(self._study(storage, combo, space.search), [*combo, *fixed], follow,
                      baseline) for combo in space.combos]  # fmt: skip
        jobs = len(plans) * (o.n_trials + len(follow) * 2)
        self.outcome = sf.SweepOutcome(str(sweep_dir), jobs=jobs, fail_fast=o.fail_fast)
        sf.record_outcome(self.outcome)
        traits = launcher_traits(self.config.hydra.launcher)
        # joblib: its n_jobs; the basic launcher runs its jobs in this process, one at a time;
        # n_jobs counts as joblib's does (-1: every core)
        slots = 1 if traits.in_process else parallel_jobs(o.n_jobs or traits.parallel_jobs)
        watch = (lambda item: Pruning(item, sweep_dir, o.objective)) if o.pruner else None
        driver = Driver(plans, space.search, o.n_trials, slots, self._launch,
                        str(sweep_dir.resolve()), sweep_dir,
                        stop=lambda: o.fail_fast and bool(self.outcome.failed), ask_lock=ask_lock,
                        watch=watch)  # fmt: skip
        try:
            return driver.run()
        except BaseException:  # stopped: joblib's workers go now (their jobs record it, as when
            if traits.local_parallel:  # a batch is aborted)
                from joblib.externals.loky import get_reusable_executor

                get_reusable_executor().shutdown(wait=False, kill_workers=True)
            raise

    def _study(self, storage: Any, combo: list[str], search: dict[str, Any]) -> Any:
        """The combination's study; a resumed one's sampler is seeded past its trials (else it
        would draw again the values it drew before). Its pruner: instantiated by Hydra."""
        o = self.o
        study = optuna.create_study(study_name=",".join([o.study_name, *combo]), storage=storage,
                                    direction=o.direction, load_if_exists=True,
                                    pruner=o.pruner)  # fmt: skip
        seed = None if o.seed is None else o.seed + len(study.trials)
        if o.sampler == "grid":
            study.sampler = GridSampler({k: list(d.choices) for k, d in search.items()}, seed=seed)
        else:
            study.sampler = SAMPLERS[o.sampler](seed=seed)
        return study

    def _launch(self, job: list[str], number: int) -> tuple[float | None, str]:
        (result,) = self.launcher.launch([job], initial_job_idx=number)
        folder = _sweeper.job_dir(result) or ""
        _sweeper.note_result(self.outcome, ",".join(job), result, Path(self.config.hydra.sweep.dir))
        if result.status != JobStatus.COMPLETED or isinstance(result.return_value, sf.NotStarted):
            return None, folder
        if self.o.objective is None:
            return float(result.return_value), folder
        summary = RunRecord(Path(folder)).read_summary() if folder else None
        value = (summary.best or {}).get(self.o.objective) if summary else None
        return (None if value is None else float(value)), folder
