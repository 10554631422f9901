"""spark-submit entry point of `corpus publish`:
`spark-submit jobs/publish.py --run RUN` (the same options)."""

import sys

from corpus.cli import main

if __name__ == "__main__":
    main(["publish", *sys.argv[1:]])
