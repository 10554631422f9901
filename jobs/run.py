"""spark-submit entry point: `spark-submit jobs/run.py --input CRAWL --out RUN` (the whole chain)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
