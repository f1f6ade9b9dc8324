"""``python -m kgan.evaluate``: see kgan.cli.evaluate."""

from kgan.cli.evaluate import main

if __name__ == "__main__":
    main()
