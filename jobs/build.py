"""spark-submit entry point of `corpus build`:
`spark-submit jobs/build.py --input CRAWL --out RUN` (the same options)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["build", *sys.argv[1:]])
