"""spark-submit entry point: `spark-submit jobs/dedup.py --input RUN/docs --out RUN/dedup`."""

import os
import sys

# Python puts this folder first on sys.path; its tokenize.py would then shadow the standard library's tokenize
# module (imported by inspect, typer, ...) and break every job. Drop the folder: jobs import only `corpus`.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from corpus.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["dedup", *sys.argv[1:]])
