"""A real Spark standalone cluster on 127.0.0.1 for tests: one Master and one or more Workers started with the
`spark-class` launcher that the pyspark wheel ships, torn down (process groups killed) when the test module ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pyspark

SPARK_HOME = Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_env(log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(log_dir),
               SPARK_NO_DAEMONIZE="1")
    return env


class StandaloneCluster:
    def __init__(self, root: Path, cores: int = 2, memory: str = "6g", workers: int = 1):
        """`cores` and `memory` are per worker."""
        self.root = root
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.cores, self.memory, self.workers = cores, memory, workers
        self.procs: list[subprocess.Popen] = []
        self.worker_procs: list[subprocess.Popen] = []

    def _launch(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], stdout=log,
                                           stderr=subprocess.STDOUT, env=spark_env(self.root),
                                           start_new_session=True))

    def start(self, timeout: float = 120) -> StandaloneCluster:
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.port), "--webui-port", str(self.ui_port)])
        for n in range(self.workers):
            # The first worker keeps the names a one-worker cluster always had (work/, worker.log).
            suffix = "" if n == 0 else f"-{n}"
            self._launch(f"worker{suffix}", ["org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                                             "--cores", str(self.cores), "--memory", self.memory,
                                             "--webui-port", str(free_port()),
                                             "--work-dir", str(self.root / f"work{suffix}")])
            self.worker_procs.append(self.procs[-1])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a cluster process exited early; see logs in {self.root}")
            if self.alive_workers() >= self.workers:
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"no worker registered with {self.url} within {timeout}s; see logs in {self.root}")

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
                state = json.load(r)
        except OSError:
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs.clear()
        self.worker_procs.clear()

    def executors(self) -> list[psutil.Process]:
        """The executor JVMs the workers launched (children of a worker's JVM), running ones only."""
        found = []
        for worker in self.worker_procs:
            try:
                children = psutil.Process(worker.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for child in children:
                try:
                    if child.is_running() and any("CoarseGrainedExecutorBackend" in a for a in child.cmdline()):
                        found.append(child)
                except psutil.NoSuchProcess:
                    pass
        return found
