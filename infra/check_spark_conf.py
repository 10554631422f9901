"""Check conf/spark/*.conf against the config registry of the installed Spark (needs Java; starts a bare JVM).

    .venv/bin/python infra/check_spark_conf.py conf/spark/cluster.conf conf/spark/local.conf

Every key must be a registered Spark config entry and its value must parse with that entry's converter.
`spark.master` is read by SparkConf itself, not registered as an entry, so it is accepted by name.
tests/e2e/test_infra.py does the fast, JVM-free part (keys against a verified list); this is the slow, exact part.
"""

from __future__ import annotations

import sys

NOT_REGISTERED_BUT_DOCUMENTED = {"spark.master"}


def read_conf(path: str) -> list[tuple[str, str]]:
    pairs = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split(None, 1)
            pairs.append((key, value))
    return pairs


def main(paths: list[str]) -> int:
    from pyspark.java_gateway import launch_gateway

    jvm = launch_gateway().jvm
    # Scala objects register their entries when first touched: core, SQL and Kubernetes holders.
    getattr(getattr(jvm.org.apache.spark.internal.config, "package$"), "MODULE$").EXECUTOR_MEMORY()
    jvm.org.apache.spark.sql.internal.SQLConf.get()
    getattr(getattr(jvm.org.apache.spark.deploy.k8s, "Config$"), "MODULE$").toString()
    registry = getattr(getattr(jvm.org.apache.spark.internal.config, "ConfigEntry$"), "MODULE$")
    bad = 0
    for path in paths:
        for key, value in read_conf(path):
            if key in NOT_REGISTERED_BUT_DOCUMENTED:
                print(f"ok   {key} = {value} (documented, read by SparkConf)")
                continue
            entry = registry.findEntry(key)
            if entry is None:
                print(f"BAD  {path}: unknown key {key}")
                bad += 1
                continue
            try:
                print(f"ok   {key} = {value} -> {entry.valueConverter().apply(value)}")
            except Exception as e:  # py4j wraps the JVM's parse error
                print(f"BAD  {path}: {key} = {value}: {str(e).splitlines()[0][:200]}")
                bad += 1
    print(f"{bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["conf/spark/cluster.conf", "conf/spark/local.conf"]))
