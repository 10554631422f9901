"""spark-submit entry point of `corpus pii`:
`spark-submit jobs/pii.py --input RUN/dedup/docs --out RUN/pii` (the same options)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["pii", *sys.argv[1:]])
