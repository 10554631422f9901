"""Shipping small driver-side files (a tokenizer model) to every executor with SparkContext.addFile."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

_SHIPPED: set[str] = set()


def ship_file(spark, data: bytes, suffix: str) -> str:
    """Ship `data` to the executors; return the name to open there with SparkFiles.get(name).

    addFile names must be unique per SparkContext with fixed contents, so the copy is content-addressed: the same
    bytes are shipped once, other bytes get another name."""
    name = f"corpus-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    if name not in _SHIPPED:
        local = Path(tempfile.mkdtemp(prefix="corpus-ship-")) / name
        local.write_bytes(data)
        spark.sparkContext.addFile(str(local))
        _SHIPPED.add(name)
    return name
