"""``python -m resnet_exp.summary <overrides>``: per-layer output shapes, parameters and FLOPs of
the network ``python -m resnet_exp`` would build with the same overrides, without training.
"""

from __future__ import annotations

import sys

from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf.errors import OmegaConfBaseException

from resnet_exp.data.facts import input_side
from resnet_exp.errors import UserError
from resnet_exp.hydra_glue.compose import compose, composition_error
from resnet_exp.models.profile import format_table, layer_table
from resnet_exp.validation import validate


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        cfg = compose(args)
        validate(cfg)  # the same values training accepts, no more (e.g. data.resize=0)
        model = instantiate(cfg.model)
    except (HydraException, OmegaConfBaseException, UserError) as error:
        cause = error.__cause__ if isinstance(error.__cause__, UserError) else error
        text = str(cause) if isinstance(cause, UserError) else composition_error(cause)
        print(f"error: {text}", file=sys.stderr)
        return 2
    side = input_side(cfg.data.name, cfg.data.resize)  # what the model sees
    shape = (cfg.data.in_channels, side, side)
    rows, total = layer_table(model, shape)
    facts = model.describe()
    kind = "residual" if facts["residual"] else "plain"
    print(
        f"{facts['family']} family, {facts['block']} blocks ({kind}), depth {facts['depth']}, "
        f"shortcut {facts['shortcut'] or '-'}; input {'x'.join(map(str, shape))}, "
        f"{cfg.data.num_classes} classes ({cfg.data.name})"
    )
    print(format_table(rows, total, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
