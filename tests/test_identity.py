"""A job is known by what it computes (SPEC §8, tracking/identity.py): however its values are
written, a re-run trains exactly the jobs whose identity is new, and the report counts each seed of
a configuration once."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cli import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from tiny_run import fake_fashionmnist

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.tracking import identity

# -- the rule (no training) -----------------------------------------------------------------------

_DEFAULT = OmegaConf.to_container(compose([]), resolve=True)
_FLAT = identity.flatten(_DEFAULT)


def _nested(flat: dict) -> dict:
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _rewritten(tree: dict, order: list[int], draw_float: bool) -> dict:
    """The same config written another way: keys in another order, 0.1 as 1e-1, 8 as 8.0."""
    items = list(tree.items())
    items = [items[i] for i in order if i < len(items)] + items[len(order) :]
    out = {}
    for key, value in items:
        if isinstance(value, dict):
            out[key] = _rewritten(value, list(reversed(order)), draw_float)
        elif draw_float and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
        else:
            out[key] = float(repr(value)) if isinstance(value, float) else value
    return out


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(list(range(8))),
    as_float=st.booleans(),
    machine=st.dictionaries(
        st.sampled_from(sorted(identity.MACHINE_KEYS)),
        st.one_of(st.integers(0, 64), st.text(max_size=8), st.booleans(), st.none()),
    ),
)
def test_equal_configs_written_differently_have_one_identity(
    order: list[int], as_float: bool, machine: dict
) -> None:
    written = _rewritten(_DEFAULT, order, as_float)
    for dotted, value in machine.items():  # machine-only keys set to anything
        *parents, leaf = dotted.split(".")
        node = written
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    written.setdefault("trainer", {})["device"] = "auto"
    assert identity.identity_key(written) == identity.identity_key(_DEFAULT)


@settings(max_examples=80, deadline=None)
@given(key=st.sampled_from(sorted(_FLAT)), data=st.data())
def test_changing_any_key_that_is_not_machine_only_changes_the_identity(key: str, data) -> None:
    old = _FLAT[key]
    if isinstance(old, bool):
        new = not old
    elif isinstance(old, (int, float)):
        new = old + data.draw(st.sampled_from([1, 3, 0.5]))
    elif isinstance(old, list):
        new = [*old, 0.25]
    else:
        new = f"{old}x"
    changed = _nested({**_FLAT, key: new})
    assert identity.identity_key(changed) != identity.identity_key(_DEFAULT), key
    assert (
        identity.configuration(identity.identity_key(changed))
        != identity.configuration(identity.identity_key(_DEFAULT))
        or key == "seed"
    )


def test_the_device_index_and_a_trailing_slash_are_how_not_what() -> None:
    def with_device(device: str) -> str:
        return identity.identity_key({**_DEFAULT, "trainer": {**_DEFAULT["trainer"],
                                                              "device": device}})  # fmt: skip

    assert with_device("cuda:1") == with_device("cuda") != with_device("cpu")


def test_a_key_stored_before_this_rule_is_compared_as_then() -> None:
    key = identity.identity_key(_DEFAULT)
    old = {k: v for k, v in _FLAT.items() if not k.startswith("data.eval")}
    assert identity.same_key(json.dumps(old), key)
    assert not identity.same_key(json.dumps({**old, "seed": 7}), key)
    assert "seed=7 there, 0 now" in identity.key_difference(json.dumps({**old, "seed": 7}), key)


# -- through the command line, counting what trained ----------------------------------------------


def _args(root: Path, sweep: Path, *overrides: str) -> list[str]:
    return [
        "--multirun", *overrides, f"data.root={root}", "data.train_subset=48", "data.val_size=16",
        "data.test_subset=16", "data.batch_size=16", "trainer.epochs=1", "trainer.device=cpu",
        "trainer.progress=false", "trainer.response_images=0", "logger=none",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip


def _files(sweep: Path) -> dict[str, str]:
    """Every file of every job folder and a hash of its bytes."""
    jobs = [p for p in sweep.glob("*") if (p / ".hydra").is_dir()]
    return {
        str(f.relative_to(sweep)): hashlib.sha256(f.read_bytes()).hexdigest()
        for job in jobs
        for f in sorted(job.rglob("*"))
        if f.is_file()
    }


def _trained(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Job folders with a file new, changed or gone since ``before``."""
    changed = {f for f in after if before.get(f) != after[f]} | (set(before) - set(after))
    return {f.split("/", 1)[0] for f in changed}


def _config_rows(sweep: Path) -> list[dict]:
    with (sweep / "summary.csv").open() as handle:
        return [r for r in csv.DictReader(handle) if r["row"] == "config"]


def _sweep(tmp_path: Path, sweep: Path, root: Path, *overrides: str) -> set[str]:
    """Run the sweep command; the job folders it trained (new or changed files)."""
    before = _files(sweep)
    done = run_cli(*_args(root, sweep, *overrides), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return _trained(before, _files(sweep))


@pytest.mark.slow
def test_a_rerun_trains_only_jobs_whose_identity_is_new(tmp_path: Path) -> None:
    root, sweep = fake_fashionmnist(tmp_path / "data"), tmp_path / "sweep"
    assert len(_sweep(tmp_path, sweep, root)) == 1  # one job, the default seed
    first = {p.name for p in sweep.iterdir() if (p / ".hydra").is_dir()}

    dry = run_cli(*_args(root, sweep, "seed=0,1"), "--cfg", "job", cwd=tmp_path)
    assert sorted(line.rsplit(": would be ", 1)[1].split()[0] for line in dry.stdout.splitlines()
                  if ": would be " in line) == ["skipped", "started"]  # fmt: skip
    trained = _sweep(tmp_path, sweep, root, "seed=0,1")  # seed 0 is the explicit default
    assert len(trained) == 1 and not trained & first
    [row] = _config_rows(sweep)
    assert (row["n"], row["n_runs"]) == ("2", "2")  # each seed counted once

    # the same jobs written another way, with machine-only keys, re-ordered: nothing trains
    for written in (
        ["seed=0,1", "optimizer.lr=0.1"],
        ["seed=0,1", "model=resnet20"],
        ["model/depth=20", "seed=1,0"],
        ["seed=0,1", "trainer.num_threads=1", "data.download=true"],
        ["optimizer.lr=1e-1", "seed=1,0", "model.depth=20"],
    ):
        assert _sweep(tmp_path, sweep, root, *written) == set(), written
    # a new axis through the finished value: only depth 8 trains
    assert len(_sweep(tmp_path, sweep, root, "seed=0", "model/depth=20,8")) == 1
    rows = _config_rows(sweep)
    assert sorted((r["depth"], r["n"]) for r in rows) == [("20", "2"), ("8", "1")]
    assert all(len(p.name) <= 80 for p in sweep.iterdir())


@pytest.mark.slow
def test_a_sweep_of_the_old_rule_resumes_and_reports_each_job_once(tmp_path: Path) -> None:
    root, sweep = fake_fashionmnist(tmp_path / "data"), tmp_path / "sweep"
    assert len(_sweep(tmp_path, sweep, root, "seed=0")) == 1
    [job] = [p for p in sweep.iterdir() if (p / ".hydra").is_dir()]
    # as the code before this rule left it: named by its overrides, the old resume key stored
    old = sweep / "seed=0-0123abcd"
    job.rename(old)
    summary = json.loads((old / "summary.json").read_text())
    key = json.loads(summary["config_key"])
    summary["config_key"] = json.dumps({k: v for k, v in key.items() if k != "~identity"})
    (old / "summary.json").write_text(json.dumps(summary))
    copy = sweep / "model=resnet20,seed=0-4567cdef"  # the same job twice (written two ways)
    shutil.copytree(old, copy)
    (copy / "summary.json").write_text(json.dumps({**summary, "status": "failed"}))

    assert _sweep(tmp_path, sweep, root, "seed=0", "model/depth=20") == set()
    [row] = _config_rows(sweep)
    assert row["n_runs"] == "1" and row["status"] == "completed:1"
    report = (sweep / "report.md").read_text()
    assert "Some folders hold the same job" in report and "`seed=0-0123abcd`" in report
