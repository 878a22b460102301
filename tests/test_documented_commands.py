"""Every command README.md and ``--help`` show runs as written (SPEC §2).

The commands are read from README.md (code blocks and inline code) and from the text ``python -m
resnet_exp --help`` prints. Each runs in a scratch folder on the real Fashion-MNIST
(``$RESNET_EXP_DATA``) with tiny sizes appended (one epoch without warm-up, a 32-image test set,
160 training images of which 16 validate unless the command chooses its own), or with ``--cfg
job`` where it needs what a test machine lacks (CIFAR or MNIST files, a SLURM cluster, GPUs). A
sweep folder a command names (``<date>/<time>``) is a toy sweep's. The fast test pins what the
extraction finds, so a command that slips out of it (a new code fence, a new prefix) fails there
rather than going untested.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.cli import REPO, cli_env, run_cli

TINY = {
    "trainer.epochs": "1",
    "scheduler.warmup_steps": "0",  # a preset's warm-up is longer than one tiny epoch
    "data.test_subset": "32",
    "logger": "none",
}
#: 144 training images (more than the default batch of 128) and 16 validation images, which also
#: replaces a preset's own val_size that the 160 images could not hold.
TINY_TRAIN = ("data.train_subset=160", "data.val_size=16")
#: What a test machine lacks: these commands run with --cfg job (composition and the dry sweep).
NEEDS_ELSEWHERE = ("data=cifar", "data=mnist", "experiment=degradation ", "launcher=slurm", "cuda")
HYDRA_FLAGS = ("--cfg", "--info", "--help", "--hydra-help", "-sc")


def _commands(text: str) -> list[str]:
    """The resnet_exp and torchrun commands in one line of shell, comments and pipes dropped."""
    text = re.sub(r"\s#.*$", "", text.strip().removeprefix("$ ")).split("|")[0]
    found = []
    for part in text.split("&&"):
        part = " ".join(part.split()).removeprefix("time ")
        part = re.sub(r"^COLUMNS=\d+ ", "", part)
        if part.startswith(("python -m resnet_exp", "torchrun ")):
            found.append(part)
    return found


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    return list(dict.fromkeys(c for line in lines for c in _commands(line)))


@cache
def help_text() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "resnet_exp", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(REPO),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def help_commands() -> list[str]:
    text = help_text()
    examples = text.split("Examples:\n")[1].split("\n\n")[0].splitlines()
    found = [c for line in examples for c in _commands(line)]
    overrides = re.search(r"Any key can be overridden \(([^)]*)\)", text)
    assert overrides, "the --help footer lost its override example"
    return [*found, f"python -m resnet_exp {overrides.group(1)}"]


def plan(command: str, sweep: str) -> tuple[list[str], str]:
    """The argv a test runs for ``command`` and how: 'as written', 'tiny' or 'cfg job'."""
    words = shlex.split(re.sub(r"\S*<[^>]+>\S*", "SWEEP", command))  # <date>/<time>, <sweep folder>
    if words[0] == "torchrun":
        module_args = words[words.index("-m") + 2 :]
        if "trainer.device=cpu" not in module_args:  # needs GPUs: compose its config only
            return ["resnet_exp", *module_args, "--cfg", "job"], "cfg job"
        runner = ["torch.distributed.run", *words[1 : words.index("-m")], "-m", "resnet_exp"]
        return [*runner, *module_args, *_tiny(module_args)], "tiny"
    module, args = words[2], words[3:]
    if module in ("resnet_exp.report", "resnet_exp.status"):
        return [module, sweep, *[a for a in args[1:] if a != "--watch"]], "as written"
    if module != "resnet_exp" or any(a in HYDRA_FLAGS for a in args):
        return [module, *args], "as written"
    if any(n in command + " " for n in NEEDS_ELSEWHERE):
        return [module, *args, "--cfg", "job"], "cfg job"
    return [module, *args, *_tiny(args)], "tiny"


def _tiny(args: list[str]) -> list[str]:
    own = {a.split("=")[0] for a in args}
    extra = [f"{k}={v}" for k, v in TINY.items()]
    return extra if "data.train_subset" in own else [*extra, *TINY_TRAIN]


def test_extraction_finds_the_documented_commands():
    readme, helped = readme_commands(), help_commands()
    first = readme[0]
    assert first == "python -m resnet_exp experiment=degradation_quick", readme[:3]
    examples = readme[readme.index("python -m resnet_exp model=resnet50 data=fashionmnist") :]
    assert examples[1] == "python -m resnet_exp"  # the design card's example comes first
    for expected in (
        "python -m resnet_exp data.train_subset=3000 trainer.epochs=1",
        "python -m resnet_exp --multirun model/depth=20,32,44,56 model/block=plain,basic",
        "python -m resnet_exp.summary model=resnet18 data=fashionmnist data.resize=224",
        "python -m resnet_exp.report outputs/multirun/<date>/<time>",
        "python -m resnet_exp.status outputs/multirun/<date>/<time>",
        "torchrun --standalone --nproc_per_node=2 -m resnet_exp trainer.device=cpu",
    ):
        assert expected in readme
    assert len(readme) >= 25, readme
    assert helped[0] == first and helped[-1].endswith("data.train_subset=5000"), helped
    assert len(helped) == 11, helped
    modes = {plan(c, "<sweep>")[1] for c in readme + helped}
    assert modes == {"as written", "tiny", "cfg job"}


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory, fmnist_root) -> Path:
    """A finished two-job sweep, for the commands that name a sweep folder."""
    cwd = tmp_path_factory.mktemp("toy")
    sweep = cwd / "sweep"
    args = ["--multirun", "model/depth=8,14", *_tiny([]), f"hydra.sweep.dir={sweep}"]
    result = run_cli(*args, cwd=cwd, env={"RESNET_EXP_DATA": str(fmnist_root)})
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def _ids(commands: list[str]) -> list[str]:
    return [c.removeprefix("python -m ")[:80] for c in commands]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["README", "--help"])
def test_each_documented_command_runs(source, toy_sweep, fmnist_root, tmp_path):
    commands = readme_commands() if source == "README" else help_commands()
    failed = []
    for i, command in enumerate(commands):
        (module, *args), mode = plan(command, str(toy_sweep))
        cwd = tmp_path / str(i)
        cwd.mkdir()
        env = {"RESNET_EXP_DATA": str(fmnist_root), "COLUMNS": "100"}
        result = run_cli(*args, cwd=cwd, module=module, env=env)
        if result.returncode != 0:
            failed.append(f"{command}  [{mode}: {' '.join(args)}]\n{result.stderr[-1500:]}")
    assert not failed, "\n\n".join(failed)
