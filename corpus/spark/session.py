"""SparkSession creation with the checks users need before a long job: Java present and recent enough."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

MIN_JAVA = 17


class SparkSetupError(RuntimeError):
    pass


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def check_java() -> str:
    """Return the java version string, or raise a message that says what to install."""
    java = _java_binary()
    if java is None:
        raise SparkSetupError(
            f"Java {MIN_JAVA}+ is required by Spark but `java` was not found on PATH and JAVA_HOME is not set. "
            "Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SparkSetupError(f"could not run {java} -version: {e}") from e
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise SparkSetupError(f"could not read the Java version from `{java} -version`: {out.stderr.strip()}")
    major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)
    if major < MIN_JAVA:
        raise SparkSetupError(f"Spark 4 needs Java {MIN_JAVA}+, but {java} is Java {major}; set JAVA_HOME")
    return str(major)


def under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_session(master: str | None = None, app_name: str = "corpus", conf: dict[str, str] | None = None):
    """A SparkSession; under spark-submit the master and settings come from spark-submit."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit():
        check_java()
        # Python workers must run this interpreter (a venv): `python3` on PATH may lack our packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.master(master or "local[*]")
        defaults = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",  # corpus/steps/events.py shows progress (and as JSON when asked)
            "spark.sql.shuffle.partitions": "8",
            "spark.python.worker.reuse": "true",
            "spark.driver.memory": "4g",
        }
        for key, value in {**defaults, **(conf or {})}.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
