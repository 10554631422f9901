"""Checkpoints without pickle: `RUN/ckpt/step_NNNNNNN/` holds

    model.safetensors       weights (a tied output projection is stored once)
    optimizer.safetensors   optimizer tensors, keyed "<param index>.<name>"
    optimizer.json          optimizer scalars: param groups and per-parameter non-tensor state
    state.json              step, data position, RNG states (base64), config, model config
    tokenizer.model         so that generation works from the checkpoint alone

A checkpoint is written into `ckpt/.tmp-step_NNNNNNN` and renamed when complete, so a crash never leaves a
half checkpoint under a `step_` name. Loading reads only safetensors and JSON: nothing can run code.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from trainer.model import GPT, GPTConfig

STEP_DIR = re.compile(r"^step_(\d{7,})$")


class CheckpointError(ValueError):
    pass


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch_cpu": _b64(torch.get_rng_state()),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], base64.b64encode(np_state[1].tobytes()).decode(), *[float(x) for x in np_state[2:]]],
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(_unb64(state["torch_cpu"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.frombuffer(base64.b64decode(keys), dtype=np.uint32), int(pos), int(has_gauss),
                         cached))
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["torch_cuda"]])


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalar_state": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = t
    for idx, st in meta.get("scalar_state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):  # JSON turned the tuple into a list
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(run_dir: str | Path, step: int, model: GPT, opt: torch.optim.Optimizer, state: dict,
                    tokenizer: str | Path | None, keep_last: int | None = None) -> Path:
    ckpt_root = Path(run_dir) / "ckpt"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    for stale in ckpt_root.glob(".tmp-step_*"):  # left by a crash mid-save; never a valid checkpoint
        shutil.rmtree(stale, ignore_errors=True)
    tmp = ckpt_root / f".tmp-step_{step:07d}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))  # save_model drops the tied duplicate
    tensors, meta = optimizer_to_flat(opt)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "model": model.cfg.to_dict()}, indent=1))
    if tokenizer is not None:
        shutil.copyfile(tokenizer, tmp / "tokenizer.model")
    for f in tmp.iterdir():  # durable before the rename makes the checkpoint visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # re-saving the same step (e.g. after a resume) replaces it
        shutil.rmtree(final)
    os.rename(tmp, final)
    if keep_last:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "ckpt"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve(path: str | Path) -> Path:
    """A checkpoint or export folder; a run folder means its latest checkpoint."""
    path = Path(path)
    if (path / "model.safetensors").exists() and ((path / "state.json").exists() or (path / "config.json").exists()):
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: not a checkpoint, an export, or a run folder with checkpoints")
    return latest


def read_model_config(folder: Path) -> GPTConfig:
    meta = folder / "state.json" if (folder / "state.json").exists() else folder / "config.json"
    if not meta.exists():
        raise CheckpointError(f"{folder}: no state.json or config.json")
    data = json.loads(meta.read_text())
    try:
        return GPTConfig.from_dict(data["model"] if meta.name == "state.json" else data)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{meta}: unusable model config: {e}") from None


def load_model_weights(model: GPT, folder: Path) -> None:
    path = folder / "model.safetensors"
    if not path.exists():
        raise CheckpointError(f"{path}: weights missing")
    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")


def load_for_inference(path: str | Path, device: str = "cpu") -> tuple[GPT, Path]:
    folder = resolve(path)
    model = GPT(read_model_config(folder))
    load_model_weights(model, folder)
    return model.to(device).eval(), folder


def load_training_state(folder: Path, model: GPT, opt: torch.optim.Optimizer) -> dict:
    state = json.loads((folder / "state.json").read_text())
    saved = GPTConfig.from_dict(state["model"])
    if saved != model.cfg:
        raise CheckpointError(f"{folder}: saved model config {saved} differs from this run's {model.cfg}")
    load_model_weights(model, folder)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text())
    opt.load_state_dict(optimizer_from_flat(tensors, meta))
    return state


def export(path: str | Path, out: str | Path) -> Path:
    """A plain folder for inference and sharing: config.json + model.safetensors (+ tokenizer.model)."""
    folder = resolve(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_model_config(folder)
    shutil.copyfile(folder / "model.safetensors", out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    if (folder / "tokenizer.model").exists():
        shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
    return out
