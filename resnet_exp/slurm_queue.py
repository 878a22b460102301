"""A SLURM sweep's jobs as SLURM sees them: which job id runs which sweep job, and its queue state.

The SLURM launcher appends every job it submits to ``<sweep>/.submitit/slurm_jobs.json`` (job id,
overrides). From that, ``status`` shows a job without a record as ``pending`` with SLURM's reason or
as ``lost``, and the launcher never submits a job again while its SLURM job is queued or running.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from resnet_exp.atomic import atomic_write
from resnet_exp.tracking.record import LOST, PENDING, RUNNING

JOBS_FILE = Path(".submitit") / "slurm_jobs.json"
#: SLURM states of a job that is still queued or running (it will write its record).
ACTIVE = frozenset(
    {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
     "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"}
)  # fmt: skip

#: squeue's reasons of a pending job that no wait clears: it asks more than its partition allows
NEVER_STARTS = frozenset({"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit"})


@dataclass(frozen=True)
class QueueState:
    state: str  # SLURM's: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, OUT_OF_MEMORY, ...
    reason: str = ""  # squeue's %r for a queued job: Priority, Resources, BeginTime, ...

    @property
    def active(self) -> bool:
        return self.state in ACTIVE and self.reason not in NEVER_STARTS


def never_fits(partition: str | None, cpus: int, mem_gb: float) -> str | None:
    """Why a job asking ``cpus`` CPUs and ``mem_gb`` GB of one node can never start in
    ``partition`` (no node sinfo lists there has that), or None (one has, or sinfo says nothing)."""
    where = ["-p", str(partition)] if partition else []
    rows = [r.split() for r in _ask(["sinfo", "-h", "-N", *where, "-o", "%c %m"]).splitlines()]
    nodes = [(int(r[0]), int(r[1].rstrip("+")) / 1024) for r in rows
             if len(r) == 2 and r[0].isdigit() and r[1].rstrip("+").isdigit()]  # fmt: skip
    if not nodes or any(c >= cpus and gb >= mem_gb for c, gb in nodes):
        return None
    most_cpus, most_gb = max(c for c, _ in nodes), max(gb for _, gb in nodes)
    return (
        f"hydra.launcher.cpus_per_task x tasks_per_node={cpus} and mem_gb={mem_gb:g} ask more than "
        f"any node of partition {partition or '(the default)'} has (at most {most_cpus} CPUs, "
        f"{most_gb:.3g} GB): SLURM would keep every job pending forever (reason PartitionConfig). "
        f"Ask for less (e.g. hydra.launcher.cpus_per_task={min(cpus, most_cpus)} "
        f"hydra.launcher.mem_gb={int(most_gb)}) or choose another hydra.launcher.partition."
    )


_RECORDING = threading.Lock()


def record_submitted(sweep_dir: Path, jobs: Iterable[tuple[str, list[str]]]) -> None:
    """Add (job id, overrides) pairs to the sweep's list of submitted jobs."""
    path = sweep_dir / JOBS_FILE
    with _RECORDING:  # the Optuna sweeper's slots submit side by side
        entries = read_entries(sweep_dir) + [{"job_id": i, "overrides": list(o)} for i, o in jobs]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(entries, indent=1) + "\n").encode("utf-8"))


def read_entries(sweep_dir: Path) -> list[dict]:
    try:
        data = json.loads((sweep_dir / JOBS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data if isinstance(data, list) else []
    return [e for e in entries if isinstance(e, dict) and "job_id" in e]


def latest_ids(sweep_dir: Path) -> dict[frozenset[str], str]:
    """The last SLURM job id submitted for each sweep job (keyed by its set of overrides)."""
    return {frozenset(e.get("overrides") or []): str(e["job_id"]) for e in read_entries(sweep_dir)}


def parse_states(text: str) -> dict[str, QueueState]:
    """``squeue -h -r -o '%i|%T|%r'`` or ``sacct -n -X -P -o JobID,State`` lines -> {job id:
    state} (``-r``: one line per array task, ``12_3``, not ``12_[2-3]``; sacct's "CANCELLED by 0"
    is CANCELLED; squeue's reason "None" is none)."""
    states = {}
    for line in text.splitlines():
        job_id, state, reason = ([p.strip() for p in line.strip().split("|")] + ["", ""])[:3]
        if job_id and state:
            states[job_id] = QueueState(state.split()[0], "" if reason == "None" else reason)
    return states


def _ask(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def queue_states(job_ids: Iterable[str]) -> dict[str, QueueState]:
    """SLURM's state of each job: squeue for jobs it still lists, sacct for the others ({} where
    SLURM cannot be asked)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    states = parse_states(_ask(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%r"]))
    rest = [i for i in ids if i not in states]
    if rest:
        sacct = parse_states(_ask(["sacct", "-n", "-X", "-P", "-j", ",".join(rest),
                                  "-o", "JobID,State"]))  # fmt: skip
        states.update({i: s for i, s in sacct.items() if i in rest})
    return states


def still_queued(sweep_dir: Path, jobs: list[list[str]]) -> dict[int, str]:
    """{index in ``jobs``: SLURM job id} for the jobs whose last submission is queued or running."""
    ids = latest_ids(sweep_dir)
    wanted = {n: ids[frozenset(job)] for n, job in enumerate(jobs) if frozenset(job) in ids}
    states = queue_states(wanted.values())
    return {n: i for n, i in wanted.items() if i in states and states[i].active}


def explain(job_id: str, state: QueueState | None) -> tuple[str, str] | None:
    """(status state, detail) for a job without a final record, from SLURM's state; None when
    SLURM does not know the job or says it is running (the record tells more then)."""
    if state is None or state.state == "RUNNING":
        return None
    if state.state == "PENDING" and not state.active:
        return LOST, (
            f"SLURM job {job_id} can never start (reason: {state.reason}: it asks more than its "
            f"partition allows); scancel {job_id} and re-run the sweep asking for less"
        )
    if state.state == "PENDING":
        why = f", reason: {state.reason}" if state.reason else ""
        return PENDING, f"queued as SLURM job {job_id}{why}"
    if state.active:
        return PENDING, f"SLURM job {job_id} is {state.state}"
    return LOST, (
        f"SLURM job {job_id} ended in state {state.state} without a record; re-run the sweep "
        "command to run it again"
    )


def annotate(sweep_dir: Path, rows: list) -> None:
    """``status``: rows (``JobStatus``) without a final record get SLURM's word on their job."""
    ids = latest_ids(sweep_dir)
    if not ids:  # not a SLURM sweep: nothing to ask
        return
    open_rows = [r for r in rows if r.state in (PENDING, RUNNING, LOST)]
    wanted = {id(r): ids.get(frozenset(r.overrides)) for r in open_rows}
    states = queue_states(i for i in wanted.values() if i)
    for row in open_rows:
        job_id = wanted[id(row)]
        state = states.get(job_id) if job_id else None
        new = explain(job_id, state) if job_id else None
        if state is not None and state.state == "RUNNING" and row.state == PENDING:
            new = PENDING, f"running as SLURM job {job_id}, no record yet"
        if new is not None:
            row.state, row.detail = new
            row.queued = state is not None and state.active
