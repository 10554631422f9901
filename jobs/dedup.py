"""spark-submit entry point of `corpus dedup`:
`spark-submit jobs/dedup.py --input RUN/docs --out RUN/dedup` (the same options)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["dedup", *sys.argv[1:]])
