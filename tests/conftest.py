"""Shared fixtures: one local SparkSession per test run (a session start costs ~10 s here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when the data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (see ../shared/data/SOURCES.md)")
    return path


def shakespeare_slices(size: int, total: int) -> list[str]:
    """Consecutive `size`-character slices of the first `total` characters of tinyshakespeare (skip when absent)."""
    text = shared_data("text", "tinyshakespeare.txt").read_text(encoding="utf-8")
    return [text[i : i + size] for i in range(0, total, size)]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1, for the whole test session.

    Clients reach it as a user's would: AWS_ENDPOINT_URL plus dummy credentials in the environment. It starts
    before the SparkSession (the `spark` fixture depends on it) because Spark's Python workers inherit the JVM's
    environment, fixed when the JVM starts."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except urllib.error.HTTPError:  # any HTTP answer: the server is up
            break
        except OSError:
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": ""}


@pytest.fixture(scope="session")
def spark(s3_server):
    from corpus.spark.session import get_session

    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    session = get_session(
        "local[2]",
        "corpus-tests",
        {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.driver.memory": "2g"},
    )
    yield session
    session.stop()


# Post-training fixtures (tiny_base), shared by the sft/reward/lora/dpo/ppo tests.
pytest_plugins = ["posttrain_fixtures"]


@pytest.fixture(scope="module")
def torch_one_thread():
    """The test machine's 2 cores are shared with other jobs; with 2 OpenMP threads a step then stalls for seconds.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(items):
    """Every test that uses the shared SparkSession is marked `spark`, so `pytest -m "not spark"` runs the fast
    tests alone (the markers are declared in pyproject.toml)."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
