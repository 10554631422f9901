"""spark-submit entry point: `spark-submit jobs/build.py --input ... --out RUN` (same options as `corpus build`)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["build", *sys.argv[1:]])
