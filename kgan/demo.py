"""``python -m kgan.demo``: a local web page to try exported models. See kgan.cli.demo."""
from kgan.cli.demo import main

if __name__ == "__main__":
    main()
