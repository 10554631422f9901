"""`trainer pretrain --data s3://…` stops with the copy command instead of failing deep in the data loader."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_remote_token_folder_is_refused_with_the_copy_command(tmp_path):
    cmd = [sys.executable, "-m", "trainer.cli", "pretrain", "--config", str(REPO / "conf/train/tiny.yaml"),
           "--data", "s3://bucket/run/tokens", "--out", str(tmp_path / "out")]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "local copy" in res.stderr and "aws s3 cp --recursive s3://bucket/run/tokens" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
