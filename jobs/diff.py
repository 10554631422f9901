"""spark-submit entry point of `corpus diff`:
`spark-submit jobs/diff.py RUN_A RUN_B [--out FILE]` (needs no Spark: corpus.report.diff)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["diff", *sys.argv[1:]])
