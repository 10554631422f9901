"""spark-submit entry point of `corpus report`:
`spark-submit jobs/report.py RUN [--out FILE]` (needs no Spark: corpus.report.data)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
