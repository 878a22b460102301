"""`python -m resnet_exp`: run the Hydra app."""

from resnet_exp.app import entry

if __name__ == "__main__":
    entry()
