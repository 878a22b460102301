"""`python -m resnet_exp`: run the Hydra app."""

from resnet_exp.app import main

if __name__ == "__main__":
    main()
