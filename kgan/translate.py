"""``python -m kgan.translate``: translate images with a trained generator. See kgan.cli.translate
(the library parts: kgan.serving.translators, kgan.serving.inference, kgan.serving.tiling)."""

from kgan.cli.translate import main

if __name__ == "__main__":
    main()
