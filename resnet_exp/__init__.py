"""resnet_exp: the degradation problem of plain deep nets and its residual fix, with Hydra."""

__version__ = "0.1.0"
