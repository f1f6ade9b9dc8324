"""``python -m kgan.bench``: see kgan.cli.bench."""

from kgan.cli.bench import main

if __name__ == "__main__":
    main()
