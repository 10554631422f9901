"""SparkPipelineExecutor: run a datatrove pipeline (a list of PipelineSteps) with every rank as one Spark task.

The contract is datatrove's own (``datatrove.executor.base.PipelineExecutor``): each rank runs the whole pipeline
with ``rank``/``world_size``; ``_run_for_rank`` (datatrove's code, not ours) writes ``logs/task_RRRRR.log``,
``stats/RRRRR.json`` and the ``completions/RRRRR`` marker; completed ranks are skipped on a rerun; ``stats.json``
is the merge of every rank's stats, as LocalPipelineExecutor writes it. The executor travels to the Spark
workers pickled with dill (``fmode=CONTENTS_FMODE``), as SlurmPipelineExecutor ships ``executor.pik``.

A rank that raises does not abort the Spark job: Spark would kill the ranks still running and lose their work.
The error comes back as a value, every other rank finishes (and is marked complete), then ``run()`` raises
``RankFailedError`` naming each failed rank, its error and its log file; a rerun runs only the failed ranks.

Steps marked ``runs_on_driver = True`` (``SparkMinhashDedupCluster``) are Spark jobs themselves: a pipeline of
such a step runs as rank 0 of 1 on the driver, where the SparkSession lives, with the same logs/stats/marker.

Nothing in ``corpus`` imports this package: ``corpus.datatrove`` loads this module (and datatrove's executors)
on first access to ``corpus.datatrove.SparkPipelineExecutor``, so corpus's own jobs never depend on them.
"""

from __future__ import annotations

import time
import traceback
from functools import partial

from datatrove.executor.base import DistributedEnvVars, PipelineExecutor
from datatrove.utils.logging import logger
from datatrove.utils.stats import PipelineStats


class RankFailedError(RuntimeError):
    """One or more ranks raised; the message names each rank, its error and its log file."""

    def __init__(self, failures: list[tuple[int, str]], logging_dir: str, world_size: int):
        self.failures = failures
        lines = [f"  rank {rank}: {error} (log: {logging_dir}/logs/task_{rank:05d}.log)" for rank, error in failures]
        super().__init__(
            f"{len(failures)} of {world_size} datatrove ranks failed; the other ranks' work is kept and marked "
            "complete, so a rerun runs only the failed ranks:\n" + "\n".join(lines)
        )


def _run_ranks(payload: bytes, items):
    """Spark task body: unpickle the executor (dill, like datatrove's launch_pickled_pipeline) and run its ranks."""
    import dill

    for slot, rank in items:
        executor = dill.loads(payload)
        try:
            # local_rank 0 logs INFO to the worker's stderr, others only errors (datatrove's console convention)
            stats = executor._run_for_rank(rank, local_rank=0 if slot == 0 else 1)
            yield rank, None, stats
        except Exception as e:  # the rank's error goes back to the driver; the other ranks keep running
            yield rank, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-8)}", None


class SparkPipelineExecutor(PipelineExecutor):
    """Run a datatrove pipeline on Spark: one Spark task per rank.

    Args:
        pipeline: a list of PipelineSteps and/or callables ``(data, rank, world_size)``, as for datatrove.
        tasks: number of ranks (world size).
        logging_dir: logs, per-rank stats, completion markers and ``stats.json`` (any datatrove DataFolder;
            on a cluster a path every executor can write: HDFS, S3, a shared disk).
        depends: an executor (Spark or Local) that must have completed all its ranks first; run here if it
            was not launched yet, else waited for.
        skip_completed: skip ranks with a completion marker (default True).
        randomize_start_duration: each rank sleeps up to this many seconds first (datatrove's option).
        spark: the SparkSession to use (under spark-submit, or a session you built); default: the active
            session, else one created with ``master``.
        master: master URL when a session must be created (default ``local[*]``); ignored under spark-submit.
        cpus_per_task: cores reserved per rank (Spark stage-level scheduling, ``TaskResourceRequests.cpus``;
            standalone/YARN/Kubernetes). Concurrency is the executors' cores divided by this.
        depends_poll_seconds: how often to look at an unfinished dependency run elsewhere.
    """

    def __init__(self, pipeline, tasks: int = 1, logging_dir=None, depends=None, skip_completed: bool = True,
                 randomize_start_duration: int = 0, spark=None, master: str | None = None,
                 cpus_per_task: int = 1, depends_poll_seconds: float = 120):
        super().__init__(pipeline, logging_dir, skip_completed, randomize_start_duration)
        if not isinstance(tasks, int) or tasks < 1:
            raise ValueError(f"tasks must be a positive integer, got {tasks!r}")
        if not isinstance(cpus_per_task, int) or cpus_per_task < 1:
            raise ValueError(f"cpus_per_task must be a positive integer, got {cpus_per_task!r}")
        if depends is not None and not isinstance(depends, PipelineExecutor):
            raise TypeError(f"depends= must be a datatrove PipelineExecutor, got {type(depends).__name__}")
        self.tasks = tasks
        self.depends = depends
        self.master = master
        self.cpus_per_task = cpus_per_task
        self.depends_poll_seconds = depends_poll_seconds
        self._spark = spark
        self._launched = False

    def __getstate__(self):
        # What travels to the workers: no SparkSession (not picklable, driver only) and no dependency chain
        # (SlurmPipelineExecutor drops `depends` before pickling for the same reason).
        state = self.__dict__.copy()
        state["_spark"] = None
        state["depends"] = None
        return state

    @property
    def world_size(self) -> int:
        return self.tasks

    def get_distributed_env(self, node_rank: int = -1) -> DistributedEnvVars:
        import socket

        return DistributedEnvVars(
            datatrove_node_ips=socket.gethostname(),
            datatrove_cpus_per_task=str(self.cpus_per_task),
            datatrove_mem_per_cpu="-1",
            datatrove_gpus_on_node="-1",
            datatrove_executor="SPARK",
        )

    def _session(self):
        if self._spark is None:
            from pyspark.sql import SparkSession

            self._spark = SparkSession.getActiveSession()
        if self._spark is None:
            from corpus.spark.session import get_session

            self._spark = get_session(self.master, "datatrove")
        return self._spark

    def _wait_for_dependency(self):
        dep = self.depends
        if not getattr(dep, "_launched", True):
            logger.info(f"Launching dependency job {type(dep).__name__}({dep.logging_dir.path})")
            if isinstance(dep, SparkPipelineExecutor) and dep._spark is None:
                dep._spark = self._spark
            dep.run()
        while (incomplete := len(dep.get_incomplete_ranks(skip_completed=True))) > 0:
            logger.info(f"Dependency job still has {incomplete}/{dep.world_size} tasks. Waiting...")
            time.sleep(self.depends_poll_seconds)

    def _on_driver(self) -> bool:
        driver_steps = [s for s in self.pipeline if getattr(s, "runs_on_driver", False)]
        if driver_steps and (self.tasks != 1 or len(self.pipeline) != 1):
            raise ValueError(
                f"{type(driver_steps[0]).__name__} is a Spark job run from the driver: give it its own executor "
                f"with tasks=1 and no other step (got tasks={self.tasks}, {len(self.pipeline)} steps)"
            )
        return bool(driver_steps)

    def run(self):
        """Run every incomplete rank as one Spark task; returns the merged PipelineStats (None if nothing ran)."""
        on_driver = self._on_driver()
        spark = self._session()
        if self.depends is not None:
            self._wait_for_dependency()
        self._launched = True
        ranks = self.get_incomplete_ranks()
        if not ranks:
            logger.info(f"Not doing anything as all {self.tasks} tasks have already been completed.")
            return None
        if skipped := self.tasks - len(ranks):
            logger.info(f"Skipping {skipped} already completed tasks")
        self.save_executor_as_json()

        if on_driver:
            results = list(_run_ranks(self._payload(), [(0, 0)]))
        else:
            sc = spark.sparkContext
            rdd = sc.parallelize(list(enumerate(ranks)), numSlices=len(ranks))
            rdd = self._with_resources(rdd, sc)
            sc.setJobDescription(f"datatrove: {len(ranks)} ranks of {self.tasks}")
            results = rdd.mapPartitions(partial(_run_ranks, self._payload())).collect()
        results.sort(key=lambda r: r[0])
        failures = [(rank, err.split("\n", 1)[0]) for rank, err, _ in results if err is not None]
        if failures:
            raise RankFailedError(failures, self.logging_dir.path, self.tasks)
        return self._merge_stats([stats for _, _, stats in results])

    def _payload(self) -> bytes:
        import dill
        from dill import CONTENTS_FMODE

        return dill.dumps(self, fmode=CONTENTS_FMODE)

    def _with_resources(self, rdd, sc):
        if self.cpus_per_task == 1:
            return rdd
        if sc.master.startswith("local"):
            logger.warning(f"cpus_per_task={self.cpus_per_task} ignored in local mode (one core per task)")
            return rdd
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        profile = ResourceProfileBuilder().require(TaskResourceRequests().cpus(self.cpus_per_task)).build
        return rdd.withResources(profile)

    def _merge_stats(self, stats: list):
        # LocalPipelineExecutor's stats.json: the sum of the in-memory stats of the ranks run by this call (a rerun's
        # covers the ranks it ran; stats/RRRRR.json has every rank's), summed in rank order so floats are stable.
        total = sum(stats, start=PipelineStats())
        with self.logging_dir.open("stats.json", "wt") as f:
            total.save_to_disk(f)
        logger.success(total.get_repr(f"All {self.tasks} tasks"))
        return total

