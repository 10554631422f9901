"""The metrics logger of every training run: console, `metrics.jsonl` and TensorBoard (when installed)."""

from __future__ import annotations

import json
from pathlib import Path


class Logger:
    """Console + metrics.jsonl + TensorBoard (when installed); a no-op off rank 0."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_step: int, quiet: bool = False):
        self.enabled, self.quiet, self.tb = enabled, quiet, None
        if not enabled:
            return
        self.path = out / "metrics.jsonl"
        if self.path.exists():
            # Lines after the checkpoint belong to steps that will be redone: drop them so the log stays one run.
            kept = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        self.file = open(self.path, "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                self.print("note: tensorboard is not installed; logging to console and metrics.jsonl only")

    def print(self, msg: str) -> None:
        if self.enabled and not self.quiet:
            print(msg, flush=True)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "kind") and isinstance(value, int | float):
                    self.tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()
