"""Run a datatrove pipeline on Spark: datatrove's readers, filters and writer, one Spark task per rank.

    spark-submit examples/datatrove_on_spark.py --input ../shared/data/docs --out /tmp/dt-spark --tasks 2
    python examples/datatrove_on_spark.py --input ../shared/data/docs --out /tmp/dt-spark --tasks 2 --master "local[2]"

--input is a folder of JSONL(.gz) documents (id, text; the id is the URL, as in dolma's CC documents) or, with
--warc, of WARC files (extracted with datatrove's Trafilatura). The pipeline is plain datatrove; only the executor
changes: swap SparkPipelineExecutor for LocalPipelineExecutor and the same files come out.
"""

from __future__ import annotations

import argparse

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import JsonlReader, WarcReader
from datatrove.pipeline.writers import JsonlWriter

from corpus.datatrove import SparkPipelineExecutor
from corpus.datatrove.recipes import fineweb_filters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--warc", action="store_true", help="the input folder holds *.warc.gz files")
    ap.add_argument("--master", default=None, help="e.g. local[2]; ignored under spark-submit")
    args = ap.parse_args()

    if args.warc:
        read = [WarcReader(args.input, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True, timeout=10)]
    else:
        # A user function, shipped to the executors by dill like the steps: the page URL is the document id.
        read = [JsonlReader(args.input, glob_pattern="*.jsonl.gz",
                            adapter=lambda self, data, path, i: {"text": data["text"], "id": data["id"],
                                                                 "metadata": {"url": data["id"]}})]
    pipeline = [*read, *fineweb_filters(), JsonlWriter(f"{args.out}/docs")]
    stats = SparkPipelineExecutor(pipeline, tasks=args.tasks, logging_dir=f"{args.out}/logs",
                                  master=args.master).run()
    if stats is not None:
        writer = stats.stats[-1].stats
        print(f"kept {writer['total'].total if 'total' in writer else 0} documents -> {args.out}/docs")


if __name__ == "__main__":
    main()
