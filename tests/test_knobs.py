"""Every knob a user can set is observed by a test (tests/knobs.md), and the optimizer's knobs are
observed here: each optimizer step of a real run (compose -> app.train) is compared with the update
a hand-written SGD / Adam / AdamW computes from the same gradients and the config's values.

The oracle never reads the optimizer's own settings: lr, momentum, weight decay, nesterov and betas
come from the overrides the test passed, and the lr of each step from a schedule worked out by hand.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from tiny_run import train_tiny

from resnet_exp.config_dir import config_dir
from resnet_exp.hydra_glue.compose import compose

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread

TESTS = Path(__file__).resolve().parent
KNOBS = TESTS / "knobs.md"

# 48 training images at batch 16: 3 steps per epoch, 6 in 2 epochs. Warm-up over 2 steps from
# 0.5 x lr, then /10 at round(0.5 * 6) = 3 and round(0.75 * 6) = 4 (worked out by hand).
SCHEDULE = ["scheduler.warmup_steps=2", "scheduler.warmup_factor=0.5"]
HAND_FACTORS = [0.5, 0.75, 1.0, 0.1, 0.01, 0.01]


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-7) -> bool:
    return torch.allclose(a.double(), b.double(), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_steps_match_a_hand_written_sgd(tmp_path: Path, nesterov: bool) -> None:
    """optimizer.lr, momentum, weight_decay and nesterov, and the lr schedule, all reach every
    step: weight decay on every parameter (BatchNorm and biases too), as torch.optim.SGD does."""
    lr, momentum, wd = 0.2, 0.8, 0.05
    run = train_tiny(
        tmp_path, "optimizer=sgd", f"optimizer.lr={lr}", f"optimizer.momentum={momentum}",
        f"optimizer.weight_decay={wd}", f"optimizer.nesterov={str(nesterov).lower()}", *SCHEDULE,
    )  # fmt: skip
    assert len(run.steps) == 6
    bufs: list[torch.Tensor | None] = [None] * len(run.steps[0].before)
    for t, step in enumerate(run.steps):
        step_lr = lr * HAND_FACTORS[t]
        assert step.lrs == pytest.approx([step_lr] * len(step.lrs), rel=1e-12), t
        for i, (w, g, after) in enumerate(zip(step.before, step.grads, step.after)):
            d = g.double() + wd * w.double()
            bufs[i] = d if bufs[i] is None else momentum * bufs[i] + d
            update = d + momentum * bufs[i] if nesterov else bufs[i]
            assert close(after, w.double() - step_lr * update), (t, i)
    # weight decay is visible in the result: the update is not the plain gradient step
    w, g = run.steps[0].before[0], run.steps[0].grads[0]
    assert not close(run.steps[0].after[0], w - lr * HAND_FACTORS[0] * g)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_steps_match_a_hand_written_adam(tmp_path: Path, name: str) -> None:
    """optimizer.betas and weight_decay: Adam folds the decay into the gradient, AdamW decays the
    weights directly (Loshchilov & Hutter); eps is torch's default 1e-8."""
    lr, b1, b2, wd, eps = 0.01, 0.8, 0.95, 0.1, 1e-8
    run = train_tiny(
        tmp_path, f"optimizer={name}", f"optimizer.lr={lr}", f"optimizer.betas=[{b1},{b2}]",
        f"optimizer.weight_decay={wd}", "scheduler=none",
    )  # fmt: skip
    m = [torch.zeros_like(w, dtype=torch.float64) for w in run.steps[0].before]
    v = [torch.zeros_like(w, dtype=torch.float64) for w in run.steps[0].before]
    for t, step in enumerate(run.steps, start=1):
        for i, (w, g, after) in enumerate(zip(step.before, step.grads, step.after)):
            w, g = w.double(), g.double()
            if name == "adam":
                g = g + wd * w
            else:
                w = w * (1 - lr * wd)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            # atol: where a gradient is ~eps, fp32 rounding moves Adam's step by ~1e-6 (of 1e-2)
            expected = w - lr * m_hat / (v_hat.sqrt() + eps)
            assert close(after, expected, atol=1e-5), (name, t, i)


def test_row_lr_is_the_lr_of_each_epochs_first_step(tmp_path: Path) -> None:
    run = train_tiny(tmp_path, "optimizer.lr=0.2", *SCHEDULE)
    rows = run.epoch_rows()
    assert [r["step"] for r in rows] == [3, 6]
    assert [r["lr"] for r in rows] == pytest.approx([0.2 * 0.5, 0.2 * 0.1], rel=1e-12)


def test_sync_bn_changes_nothing_in_one_process(tmp_path: Path) -> None:
    """trainer.sync_bn pools BatchNorm statistics over DDP ranks; in one process BatchNorm already
    sees the whole batch, so the run's numbers are bit-identical (documented in distributed.py)."""
    timing = ("time/epoch_s", "throughput/img_s")
    runs = [
        train_tiny(tmp_path / v, "trainer.epochs=1", f"trainer.sync_bn={v}")
        for v in ("true", "false")
    ]
    on, off = (
        [{k: v for k, v in r.items() if k not in timing} for r in run.rows()] for run in runs
    )
    assert on == off and on
    assert all(torch.equal(a, b) for a, b in zip(runs[0].steps[-1].after, runs[1].steps[-1].after))


# -- the knob table --------------------------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|\s*$")  # key, test, how, sizes
_NODE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def table_rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in KNOBS.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            key, observed, how, _sizes = (s.strip() for s in match.groups())
            assert key not in rows, f"knobs.md lists {key} twice"
            rows[key] = (observed, how)
    return rows


def _leaves(node, prefix: str) -> set[str]:
    from omegaconf import DictConfig

    keys: set[str] = set()
    for key in node.keys() if isinstance(node, DictConfig) else ():
        if str(key).startswith("_"):  # _target_/_partial_: which class, not a setting
            continue
        value = node._get_node(key)
        if isinstance(value, DictConfig):
            keys |= _leaves(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def schema_keys() -> set[str]:
    """Every key of the composed config under every option of every config group, and every
    option itself (``optimizer=adam``, ``model/block=plain``)."""
    keys = _leaves(compose([]), "")
    conf = config_dir()
    for group in sorted(p for p in conf.rglob("*") if p.is_dir() and "hydra" not in p.parts):
        name = group.relative_to(conf).as_posix()
        for option in sorted(group.glob("*.yaml")):
            keys.add(f"{name}={option.stem}")
            top = name.split("/")[0]
            if "/" not in name and top not in ("experiment",):
                cfg = compose([f"{name}={option.stem}"])
                keys |= _leaves(cfg[top], f"{top}.")
    return keys


def test_every_schema_key_and_option_has_a_row_in_the_knob_table() -> None:
    rows = table_rows()
    missing = sorted(schema_keys() - set(rows))
    assert not missing, f"tests/knobs.md has no row for {missing}: add the test that observes it"


def test_every_row_names_an_existing_test_or_says_why_none_can() -> None:
    for key, (observed, how) in table_rows().items():
        if observed.startswith("none"):
            assert len(how) > 20, f"{key}: say why no number can change"
            continue
        nodes = _NODE.findall(observed)
        assert nodes, f"{key}: no test named in {observed!r}"
        for path, function in nodes:
            source = (TESTS.parent / path).read_text()
            defined = re.search(rf"^def {function}\(", source, re.MULTILINE)
            assert defined, f"{key}: no test {path}::{function}"
        assert how, f"{key}: say what the test compares against"


def test_hand_factors_are_the_papers_rule() -> None:
    """The literals above, from the rule: a linear ramp, then /10 at 50% and 75% of 6 steps."""
    ramp = [0.5 + 0.5 * s / 2 for s in range(2)]
    decay = [0.1 ** sum(s >= m for m in (3, round(4.5))) for s in range(2, 6)]
    assert [*ramp, *decay] == pytest.approx(HAND_FACTORS)
    assert math.isclose(round(0.75 * 6), 4)
