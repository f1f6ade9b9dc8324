"""``python -m kgan.crappify``: degraded copies of a folder of photos. See kgan.cli.crappify
(the library: kgan.data.crappify)."""

from kgan.cli.crappify import main

if __name__ == "__main__":
    main()
