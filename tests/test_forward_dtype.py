"""The speed switches reach the forward pass: a hook on the first conv sees the autocast dtype
and the memory format a run asked for, through the real entry point (config -> app.train), not the
loop alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_exp.hydra_glue.compose import compose

OUTPUT_DTYPE = {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread


def first_conv_in_training(overrides: list[str], run_dir: Path, data_root: Path) -> dict:
    """Train one tiny epoch in this process (app.train, what ``python -m resnet_exp`` runs) and
    return what the network's first conv saw in its first training forward: input/output dtype
    and memory format."""
    from resnet_exp.app import train
    from resnet_exp.hydra_glue.job import JobFacts

    cfg = compose(
        [
            f"data.root={data_root}",
            "data.train_subset=80",
            "data.val_size=16",
            "data.test_subset=16",
            "data.batch_size=32",
            "data.in_channels=3",  # 3 channels: a 1-channel NCHW tensor is also NHWC-contiguous
            "model.depth=8",
            "trainer.epochs=1",
            "trainer.num_threads=1",
            "trainer.progress=false",
            "logger=none",
            *overrides,
        ]
    )
    seen: dict = {}

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d) and module.training and not seen:
            x = args[0]
            seen.update(
                input_dtype=x.dtype,
                output_dtype=output.dtype,
                input_channels_last=x.is_contiguous(memory_format=torch.channels_last)
                and not x.is_contiguous(),
                output_channels_last=output.is_contiguous(memory_format=torch.channels_last)
                and not output.is_contiguous(),
                in_channels=module.in_channels,
            )

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        summary = train(cfg, JobFacts(run_dir=run_dir, overrides=overrides, group="test"))
    finally:
        handle.remove()
    assert summary.status == "completed", summary
    assert seen["in_channels"] == 3, "the hook saw the stem conv"
    seen["summary"] = summary
    return seen


@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_precision_is_the_dtype_inside_the_forward_pass(
    precision: str, tmp_path: Path, fmnist_root: Path
) -> None:
    seen = first_conv_in_training(
        [f"trainer.precision={precision}", "trainer.channels_last=false"], tmp_path, fmnist_root
    )
    assert seen["input_dtype"] == torch.float32  # the batch itself stays fp32 ...
    assert seen["output_dtype"] == OUTPUT_DTYPE[precision]  # ... autocast runs the conv in it
    assert seen["summary"].speed["precision"] == precision


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_is_the_memory_format_the_first_conv_sees(
    channels_last: bool, tmp_path: Path, fmnist_root: Path
) -> None:
    seen = first_conv_in_training(
        ["trainer.precision=32", f"trainer.channels_last={str(channels_last).lower()}"],
        tmp_path,
        fmnist_root,
    )
    assert seen["input_channels_last"] is channels_last
    assert seen["output_channels_last"] is channels_last
    assert seen["output_dtype"] == torch.float32
