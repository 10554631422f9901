"""spark-submit entry point of `corpus run`:
`spark-submit jobs/run.py --input CRAWL --out RUN` (the whole chain, the same options)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
