"""``python -m kgan.convert``: PyTorch reference checkpoints to kgan models and exports. See
kgan.cli.convert."""
from kgan.cli.convert import main

if __name__ == "__main__":
    main()
