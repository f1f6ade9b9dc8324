"""``python -m kgan.train --flagfile=configs/X.cfg``: train a model. See kgan.cli.train (the
library: kgan.recipes, kgan.training.trainers)."""

from kgan.cli.train import main

if __name__ == "__main__":
    main()
