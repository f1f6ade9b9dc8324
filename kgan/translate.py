"""``python -m kgan.translate``: translate images with a trained generator. See kgan.cli.translate
(the library parts: kgan.serving, kgan.inference, kgan.tiling)."""

from kgan.cli.translate import main

if __name__ == "__main__":
    main()
