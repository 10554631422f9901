"""spark-submit entry point: `spark-submit jobs/tokenize.py --input RUN/dedup/docs --out RUN/tokens`."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["tokenize", *sys.argv[1:]])
