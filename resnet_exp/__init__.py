"""resnet_exp: reproduce the degradation problem of plain deep nets and its residual fix, with Hydra."""

__version__ = "0.1.0"
