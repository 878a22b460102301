"""Speed switches (precision, channels_last, compile), their `auto` rules, start-up, benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import lightning_peer
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.training import speed
from resnet_exp.training.speed import Capabilities, resolve

REPO = Path(__file__).resolve().parents[1]

CUDA_BF16 = Capabilities("cuda", cuda_bf16=True, cuda_capability=(8, 0), triton=True)
CUDA_V100 = Capabilities("cuda", cuda_bf16=False, cuda_capability=(7, 0), triton=True)
CUDA_OLD = Capabilities("cuda", cuda_bf16=False, cuda_capability=(6, 1), triton=True)
CPU_AVX2 = Capabilities("cpu", cpu_bf16=False, cpu_capability="AVX2")
CPU_AMX = Capabilities("cpu", cpu_bf16=True, cpu_capability="AVX512")


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared CI machine, more threads than free cores make OpenMP
    barriers spin and a 2-step run take tens of seconds instead of one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- auto rules (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("caps", "precision", "channels_last"),
    [
        (CUDA_BF16, "bf16", True),
        (CUDA_V100, "16", True),
        (CUDA_OLD, "32", True),
        (CPU_AVX2, "32", True),
        (CPU_AMX, "bf16", True),
        (Capabilities("mps"), "32", False),
    ],
)
def test_auto_rules(caps: Capabilities, precision: str, channels_last: bool) -> None:
    choice = resolve("auto", "auto", "auto", caps, planned_steps=1000)
    assert (choice.precision, choice.channels_last, choice.compile) == (
        precision,
        channels_last,
        False,
    )
    assert set(choice.reasons) == {"precision", "channels_last", "compile"}


def test_compile_auto_only_for_long_cuda_runs_with_triton() -> None:
    long = speed.COMPILE_AUTO_MIN_STEPS
    assert resolve("auto", "auto", "auto", CUDA_BF16, planned_steps=long).compile
    assert not resolve("auto", "auto", "auto", CUDA_BF16, planned_steps=long - 1).compile
    no_triton = Capabilities("cuda", cuda_bf16=True, cuda_capability=(9, 0), triton=False)
    assert not resolve("auto", "auto", "auto", no_triton, planned_steps=10 * long).compile
    assert not resolve("auto", "auto", "auto", CPU_AVX2, planned_steps=10 * long).compile


def test_explicit_values_win_over_auto() -> None:
    choice = resolve("16", False, True, CUDA_BF16, planned_steps=1)
    assert (choice.precision, choice.channels_last, choice.compile) == ("16", False, True)
    assert choice.reasons == {}
    assert choice.dtype is torch.float16
    assert resolve(32, "true", "false", CPU_AVX2).as_dict() == {
        "precision": "32",
        "channels_last": True,
        "compile": False,
        "auto": {},
    }


@pytest.mark.parametrize(
    ("precision", "channels_last", "compiled"),
    [("fp8", "auto", "auto"), ("auto", "maybe", "auto"), ("auto", "auto", 3)],
)
def test_bad_values_from_python_are_value_errors(precision, channels_last, compiled) -> None:
    # Users get InvalidConfig from the config layer (test_bad_switch_value_fails_validation).
    with pytest.raises(ValueError, match="expected"):
        resolve(precision, channels_last, compiled, CPU_AVX2)


# -- probing, with the hardware mocked -------------------------------------------------------------
def test_probe_cuda_with_bf16_resolves_to_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    caps = speed.probe(torch.device("cuda"))
    assert caps.device_type == "cuda" and caps.cuda_bf16 and caps.cuda_capability == (9, 0)
    choice = resolve("auto", "auto", "auto", caps, planned_steps=100)
    assert (choice.precision, choice.channels_last, choice.compile) == ("bf16", True, False)


@pytest.mark.parametrize(("native", "expected"), [(False, "32"), (True, "bf16")])
def test_probe_cpu_bf16(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    caps = speed.probe(torch.device("cpu"))
    assert caps.cpu_bf16 is native
    assert resolve("auto", "auto", "auto", caps).precision == expected


def test_choose_logs_what_auto_picked(caplog: pytest.LogCaptureFixture) -> None:
    trainer = compose().trainer
    assert (trainer.precision, trainer.channels_last, trainer.compile) == ("auto",) * 3
    with caplog.at_level("INFO", logger="resnet_exp"):
        choice = speed.choose(trainer, torch.device("cpu"), planned_steps=10)
    assert not choice.compile
    assert "speed switches: precision=" in caplog.text and "(auto:" in caplog.text


# -- each switch composes, validates and trains --------------------------------------------------
class TwoBatches:
    steps_per_epoch = 2

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [
            (torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(2)
        ]

    def train_batches(self, epoch: int, start_step: int = 0):
        return iter(self.batches[start_step:])

    def eval_batches(self, split: str):
        return iter(self.batches[:1])


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.precision=32"],
        ["trainer.precision=bf16"],
        ["trainer.precision=16"],
        ["trainer.channels_last=true"],
        ["trainer.channels_last=false", "trainer.precision=bf16"],
        ["trainer.precision=auto", "trainer.channels_last=auto", "trainer.compile=false"],
    ],
    ids=lambda o: " ".join(o),
)
def test_switch_composes_and_trains_two_steps(overrides: list[str], tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from resnet_exp.tracking.record import RunRecord
    from resnet_exp.tracking.wandb_logger import NullLogger
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.schedules import constant
    from resnet_exp.validation import validate

    cfg = compose(["trainer.epochs=1", *overrides])
    validate(cfg)
    device = torch.device("cpu")
    choice = speed.choose(cfg.trainer, device, planned_steps=2)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    if choice.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    settings = LoopSettings(
        epochs=1, precision_dtype=choice.dtype, channels_last=choice.channels_last, progress=False
    )
    trainer = Trainer(
        model, TwoBatches(), optimizer, constant(optimizer, 2), device, RunRecord(tmp_path),
        NullLogger(), settings, parts=model.parts(),
    )  # fmt: skip
    result = trainer.fit()
    assert result.status == "completed" and trainer.step == 2
    row = result.rows[0]
    assert row["train/loss"] > 0 and row["grad_norm/stem"] > 0
    assert trainer.scaler.is_enabled() == (choice.precision == "16")
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) == choice.channels_last


@pytest.mark.parametrize("key", ["channels_last", "compile"])
def test_bad_switch_value_fails_validation(key: str) -> None:
    from resnet_exp.validation import InvalidConfig, validate

    with pytest.raises(InvalidConfig, match=f"trainer.{key}='maybe'.*true, false, auto"):
        validate(compose([f"trainer.{key}=maybe"]))
    validate(compose([f"trainer.{key}=auto", "trainer.precision=auto"]))


# -- start-up: the config commands never import torch --------------------------------------------
@pytest.mark.parametrize("args", [["--cfg", "job"], ["--help"]], ids=" ".join)
def test_config_commands_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    from benchmarks.startup import imported_modules

    modules = imported_modules(["-m", "resnet_exp", *args], cwd=str(tmp_path))
    assert "resnet_exp" in modules and "hydra" in modules
    assert "torch" not in modules
    assert "wandb" not in modules


# -- benchmarks, end to end at --quick size ------------------------------------------------------
def test_peer_benchmark_says_why_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def no_lightning(name, *args):
        return None if name == "lightning" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_lightning)
    assert lightning_peer.available() == "lightning is not installed (pip install -e .[bench])"


@pytest.mark.slow
def test_benchmarks_quick_write_json(tmp_path: Path) -> None:
    env = {**os.environ, "RESNET_EXP_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--reps", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    micro = {"train_step", "input_pipeline", "speed_switches", "startup"}
    why_not_peer = lightning_peer.available()
    if why_not_peer is None:
        assert set(results) == micro | {"lightning_peer"}
        peer = results.pop("lightning_peer")
        assert {r["setup"] for r in peer["rows"]} == {
            "resnet_exp (defaults, tensor loader)",
            "Lightning peer",
        }
        assert peer["speed_vs_lightning_paired"] > 0
        # The in-process Lightning peer gets torch's default threads, as resnet_exp's subprocess
        # does, even though the benchmarks before it pinned this process to one thread.
        fresh = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert peer["environment"]["torch_threads"] == int(fresh.stdout)
        assert peer["config"]["threads"] == f"defaults ({int(fresh.stdout)})"
        # Both setups learned the same 5,000 images: far above chance (10%) after one epoch.
        assert all(r["test acc %"] > 40 for r in peer["rows"]), peer["rows"]
        assert "target (e)" in proc.stdout
    else:
        assert set(results) == micro
        assert f"skipped: {why_not_peer}" in proc.stdout
    for name, res in results.items():
        assert res["benchmark"] == name and res["quick"] is True
        assert {"command", "load_average_before", "rows", "times_s", "config"} <= set(res)
        assert res["rows"], name
    assert results["train_step"]["trainer_vs_bare"] > 0
    assert {"bare", "trainer", "trainer_no_grad_norms"} == {
        r["variant"] for r in results["train_step"]["rows"]
    }
    assert any(r["pipeline"] == "tensor" for r in results["input_pipeline"]["rows"]) or any(
        r["pipeline"] == "in_memory_list" for r in results["input_pipeline"]["rows"]
    )
    assert {"32|NCHW|eager", "32|NHWC|eager", "bf16|NCHW|eager"} <= set(
        results["speed_switches"]["times_s"]["resnet20"]
    )
    assert results["speed_switches"]["auto"]["precision"] in ("32", "bf16", "16")
    assert set(results["speed_switches"]["gemm_gflops"]) == {"32", "bf16"}
    assert all(rate > 0 for rate in results["speed_switches"]["gemm_gflops"].values())
    assert results["startup"]["cfg_job_imports_torch"] is False


# -- trainer.compile=true trains (the compiled callable stands in for the model) ------------------
def test_trainer_accepts_a_compiled_forward(tmp_path: Path) -> None:
    """A torch.compile'd module as ``forward`` (Dynamo's eager backend: no C++ build, seconds)."""
    from resnet_exp.models import ResNet
    from resnet_exp.models.blocks import BasicBlock
    from resnet_exp.tracking.record import RunRecord
    from resnet_exp.tracking.wandb_logger import NullLogger
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.schedules import constant

    torch.manual_seed(0)
    model = ResNet(BasicBlock, 8, family="cifar", in_channels=1, num_classes=10)
    compiled = torch.compile(model, backend="eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(
        model, TwoBatches(), optimizer, constant(optimizer, 2), torch.device("cpu"),
        RunRecord(tmp_path), NullLogger(), LoopSettings(epochs=1, progress=False),
        forward=compiled, parts=model.parts(),
    )  # fmt: skip
    assert trainer.forward is compiled
    result = trainer.fit()
    assert result.status == "completed" and trainer.step == 2
    assert result.rows[0]["grad_norm/stem"] > 0  # gradients reached the model's own parameters


@pytest.mark.slow
def test_compile_true_trains_from_the_command_line(tmp_path: Path, fmnist_root: Path) -> None:
    """torch.compile'd runs once crashed at Trainer start (``ResNet does not support len()``)."""
    from cli import run_cli

    result = run_cli(
        f"data.root={fmnist_root}",
        "data.train_subset=96",
        "data.val_size=32",
        "data.test_subset=32",
        "data.batch_size=32",
        "trainer.epochs=1",
        "trainer.device=cpu",
        "trainer.num_threads=1",
        "trainer.precision=32",
        "trainer.channels_last=false",
        "trainer.compile=true",
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (summary_path,) = tmp_path.glob("outputs/*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert summary["speed"]["compile"] is True and summary["speed"]["auto"] == {}
    assert summary["final"]["train/loss"] > 0
