"""``python -m kgan.export``: see kgan.cli.export."""

from kgan.cli.export import main

if __name__ == "__main__":
    main()
