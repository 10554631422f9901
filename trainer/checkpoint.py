"""Every save, restore and export of the trainer: checkpoints without pickle, under `RUN/ckpt/step_NNNNNNN/`:

    model.safetensors       weights (a tied output projection is stored once)   | adapter.safetensors  LoRA:
                                                                                   the trainable tensors only
    optimizer.safetensors   optimizer tensors, keyed "<param index>.<name>"
    optimizer.json          optimizer scalars: param groups and per-parameter non-tensor state
    state.json              step, data position, RNG states (base64), config, model config; post-training adds
                            method, base {path, sha256}, lora settings or null, data sha256
    tokenizer.model         so that generation works from the checkpoint alone

A checkpoint is written into `ckpt/.tmp-step_NNNNNNN`, its files and folder fsynced, then renamed in, so a crash
never leaves a half checkpoint under a `step_` name. Re-saving an existing step (after a resume) renames the old
folder aside to `.old-step_NNNNNNN` first and deletes it only after the new one is in place: a crash between the
renames leaves the old one, which `list_checkpoints` still finds. Loading reads only safetensors and JSON: nothing
can run code.

Exports: `export` (a plain folder of a full checkpoint) and `export_merged` (LoRA adapters merged; a reward model
as a full reward checkpoint).
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
import torch.nn as nn
from safetensors.torch import load_file, load_model, save_file, save_model

from corpus.tokenize.shards import sha256_file
from corpus.tokenize.tokenizer import TokenizerError, load_tokenizer
from trainer.chat import check_chat_tokens
from trainer.lora import apply_lora, has_lora, merge_lora, trainable_state_dict
from trainer.model import GPT, GPTConfig, RewardModel

STEP_DIR = re.compile(r"^step_(\d{7,})$")
ASIDE_DIR = re.compile(r"^\.old-step_(\d{7,})$")


class CheckpointError(ValueError):
    pass


def step_of(ckpt: str | Path) -> int:
    """The step number of a checkpoint folder `step_NNNNNNN` (or of one renamed aside during a re-save)."""
    name = Path(ckpt).name
    match = STEP_DIR.match(name) or ASIDE_DIR.match(name)
    if match is None:
        raise CheckpointError(f"{ckpt}: not a checkpoint folder name (step_NNNNNNN)")
    return int(match.group(1))


# -- RNG and optimizer state as JSON and safetensors -------------------------------------------------------------
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


def generator_state(gen: torch.Generator) -> str:
    return _b64(gen.get_state())


def set_generator_state(gen: torch.Generator, state: str) -> None:
    gen.set_state(_unb64(state))


def tensors_to_json(tensors: dict[str, torch.Tensor]) -> dict:
    """Small float tensors (a value head) inline in state.json."""
    return {k: {"shape": list(v.shape), "float32": base64.b64encode(v.detach().cpu().float().contiguous().numpy()
                                                                    .tobytes()).decode()} for k, v in tensors.items()}


def tensors_from_json(data: dict) -> dict[str, torch.Tensor]:
    return {k: torch.frombuffer(bytearray(base64.b64decode(v["float32"])), dtype=torch.float32).reshape(v["shape"])
            for k, v in data.items()}


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


# -- saving --------------------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (new files, renames) durable; POSIX only, a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tidy(root: Path) -> None:
    """Remove what a crash mid-save left: half-written `.tmp-` folders, and `.old-` folders whose step is back in
    place (one whose `step_` folder is missing is the only copy of that step and is put back)."""
    for stale in root.glob(".tmp-step_*"):  # never a valid checkpoint
        shutil.rmtree(stale, ignore_errors=True)
    for aside in root.glob(".old-step_*"):
        final = root / aside.name.removeprefix(".old-")
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(aside, final)


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module, opt: torch.optim.Optimizer, state: dict,
                    tokenizer: str | Path | None, keep_last: int | None = None) -> Path:
    """Write RUN/ckpt/step_NNNNNNN crash-safely; a model with LoRA adapters saves only its trainable tensors.
    `model` has `.cfg` (a GPTConfig); `state` goes into state.json with the step and the model config."""
    root = Path(run_dir) / "ckpt"
    root.mkdir(parents=True, exist_ok=True)
    _tidy(root)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp-step_{step:07d}"
    tmp.mkdir()
    if has_lora(model):
        save_file(trainable_state_dict(model), str(tmp / "adapter.safetensors"))
    else:
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
    _fsync_dir(tmp)
    aside = None
    if final.exists():  # re-saving the same step (e.g. after a resume): keep the old one until the new one is in
        aside = root / f".old-{final.name}"
        os.rename(final, aside)
    os.rename(tmp, final)
    _fsync_dir(root)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    if keep_last:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


# -- finding -------------------------------------------------------------------------------------------------------
def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints by step; a step whose only copy was renamed aside by an interrupted re-save counts."""
    root = Path(run_dir) / "ckpt"
    if not root.is_dir():
        return []
    found = {}
    for p in root.iterdir():
        if p.is_dir() and (STEP_DIR.match(p.name) or ASIDE_DIR.match(p.name)) and (p / "state.json").exists():
            if STEP_DIR.match(p.name) or step_of(p) not in found:
                found[step_of(p)] = p
    return [found[s] for s in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve(path: str | Path) -> Path:
    """A checkpoint or export folder with full weights; a run folder means its latest checkpoint."""
    path = Path(path)
    if (path / "model.safetensors").exists() and ((path / "state.json").exists() or (path / "config.json").exists()):
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: not a checkpoint, an export, or a run folder with checkpoints")
    return latest


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder (full or adapter-only), an export folder, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / "state.json").exists() and (path / "adapter.safetensors").exists():
        return path
    return resolve(path)


def read_state(folder: Path) -> dict:
    path = folder / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_model_config(folder: Path) -> GPTConfig:
    meta = folder / "state.json" if (folder / "state.json").exists() else folder / "config.json"
    if not meta.exists():
        raise CheckpointError(f"{folder}: no state.json or config.json")
    data = json.loads(meta.read_text())
    try:
        return GPTConfig.from_dict(data["model"] if meta.name == "state.json" else data)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{meta}: unusable model config: {e}") from None


def weights_sha256(folder: Path) -> str:
    """Identity of a checkpoint's weights: its model.safetensors, or its adapter.safetensors (which names its
    own base in turn)."""
    for name in ("model.safetensors", "adapter.safetensors"):
        if (folder / name).exists():
            return sha256_file(folder / name)
    raise CheckpointError(f"{folder}: no model.safetensors or adapter.safetensors")


def base_reference(folder: Path) -> dict:
    return {"path": str(folder.resolve()), "sha256": weights_sha256(folder)}


def check_base(ref: dict, what: Path) -> Path:
    """The base checkpoint a LoRA checkpoint was trained on, after checking it is unchanged."""
    base = Path(ref["path"])
    if not base.exists():
        raise CheckpointError(f"{what}: its base checkpoint {base} is missing (LoRA checkpoints hold adapters only)")
    if weights_sha256(base) != ref["sha256"]:
        raise CheckpointError(f"{what}: base checkpoint {base} has changed since the adapters were trained "
                              "(sha256 differs)")
    return base


# -- restoring -----------------------------------------------------------------------------------------------------
def load_model_weights(model: nn.Module, folder: Path) -> None:
    path = folder / "model.safetensors"
    if not path.exists():
        raise CheckpointError(f"{path}: weights missing")
    missing, unexpected = load_model(model, str(path), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not fit the model (missing {missing}, unexpected {unexpected})")


def load_trainable(model: nn.Module, folder: Path) -> None:
    """Put an adapter checkpoint's tensors into a model that has the same adapters (and heads)."""
    tensors = load_file(str(folder / "adapter.safetensors"))
    expected = set(trainable_state_dict(model))
    if set(tensors) != expected:
        raise CheckpointError(f"{folder}: adapter tensors do not fit the model (missing "
                              f"{sorted(expected - set(tensors))}, unexpected {sorted(set(tensors) - expected)})")
    model.load_state_dict(tensors, strict=False)


def restore(folder: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Weights (full, or the adapters of a LoRA model) and optimizer state of a training checkpoint into this
    run's model and optimizer, after checking they fit; returns state.json. RNG states are the caller's."""
    state = read_state(folder)
    try:
        saved = GPTConfig.from_dict(state.get("model") or {})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}: unusable model config: {e}") from None
    if saved != model.cfg:
        raise CheckpointError(f"{folder}: saved model config {saved} differs from this run's {model.cfg}")
    if has_lora(model) != bool(state.get("lora")):
        raise CheckpointError(f"{folder}: LoRA settings differ from this run's (lora_rank 0 means full fine-tuning)")
    (load_trainable if has_lora(model) else load_model_weights)(model, folder)
    opt.load_state_dict(optimizer_from_flat(load_file(str(folder / "optimizer.safetensors")),
                                            json.loads((folder / "optimizer.json").read_text())))
    return state


def load_for_inference(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Path]:
    folder = resolve(path)
    model = GPT(read_model_config(folder))
    load_model_weights(model, folder)
    return model.to(device).eval(), folder


def load_tokenizer_of(folder: Path, model_vocab: int):
    path = folder / "tokenizer.model"
    if not path.exists():
        raise CheckpointError(f"{folder}: tokenizer.model missing (checkpoints and exports carry a copy)")
    sp = load_tokenizer(path)
    check_chat_tokens(sp)
    if sp.vocab_size() > model_vocab:
        raise TokenizerError(f"{path}: vocabulary of {sp.vocab_size()} exceeds the model's {model_vocab}")
    return sp


def load_base(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Path, object]:
    """A GPT from a pretraining checkpoint, run folder, export, or a post-trained policy checkpoint (a LoRA one
    is rebuilt from its base and merged). Returns (model in eval mode, resolved folder, tokenizer)."""
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    if state.get("method") == "reward":
        raise CheckpointError(f"{folder} is a reward model checkpoint; use trainer.checkpoint.load_reward_model")
    if state.get("lora"):
        base, _, _ = load_base(check_base(state["base"], folder), device)
        lora = state["lora"]
        apply_lora(base, lora["rank"], lora["alpha"], lora["targets"], lora["dropout"])
        load_trainable(base, folder)
        model = merge_lora(base)
    else:
        model, _ = load_for_inference(folder, device)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(True)  # whatever merge_lora froze: the caller decides what trains
    return model, folder, load_tokenizer_of(folder, model.cfg.vocab_size)


def load_reward_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[RewardModel, Path, object]:
    """A trained reward model from a `trainer reward` checkpoint or run folder: (model in eval mode, folder,
    tokenizer). A LoRA checkpoint is rebuilt from its base and its adapters merged."""
    folder = resolve_checkpoint(path)
    state = read_state(folder)
    if state.get("method") != "reward":
        raise CheckpointError(f"{folder} is not a reward model checkpoint (method {state.get('method')!r})")
    if state.get("lora"):
        base, _, _ = load_base(check_base(state["base"], folder), device)
        lora = state["lora"]
        apply_lora(base, lora["rank"], lora["alpha"], lora["targets"], lora["dropout"])
        model = RewardModel.from_base(base)
        load_trainable(model, folder)
        merge_lora(model.trunk)
    else:
        model = RewardModel(GPTConfig.from_dict(state["model"]))
        load_model_weights(model, folder)
    model = model.to(device).eval()
    return model, folder, load_tokenizer_of(folder, model.cfg.vocab_size)


# -- exports -------------------------------------------------------------------------------------------------------
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


def export_merged(path: str | Path, out: str | Path) -> Path:
    """A plain export (config.json, model.safetensors, tokenizer.model) of a policy checkpoint; LoRA adapters are
    merged into the weights. `trainer generate` and `load_base` read the result.

    A reward model checkpoint becomes a full reward checkpoint instead (model.safetensors with trunk and head,
    state.json naming method "reward"), which `load_reward_model` reads without the base."""
    out = Path(out)
    folder = resolve_checkpoint(path)
    if read_state(folder).get("method") == "reward":
        reward, folder, _ = load_reward_model(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_model(reward, str(out / "model.safetensors"))
        (out / "state.json").write_text(json.dumps({"method": "reward", "model": reward.cfg.to_dict(), "lora": None,
                                                    "merged_from": base_reference(folder)}, indent=1))
        shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
        return out
    model, folder, _ = load_base(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=1))
    shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
    return out
