"""``python -m kgan.colorize``: colourise photos, folders and videos. See kgan.cli.colorize."""

from kgan.cli.colorize import main

if __name__ == "__main__":
    main()
