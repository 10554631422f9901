"""spark-submit entry point of `corpus tokenize`: `spark-submit jobs/tokens.py --input RUN/pii/docs --out RUN/tokens`.

Not named tokenize.py: Python puts this folder first on sys.path, where a tokenize.py would shadow the
standard library module that inspect and typer import."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["tokenize", *sys.argv[1:]])
