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


@pytest.fixture(scope="session")
def spark():
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
