"""Training configuration: YAML in conf/train/, `--set section.key=value` overrides, validated by pydantic.

The model section becomes `trainer.model.GPTConfig`; `model.vocab_size: null` takes the manifest's vocabulary
rounded up to a multiple of 64 (matmuls on such sizes are faster, and the extra rows are never targets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.yamlconf import apply_override as shared_override
from corpus.yamlconf import read_mapping, validate
from trainer.model import GPTConfig


class TrainConfigError(ValueError):
    """A configuration file or override is unusable; the message names the setting."""


class MoEConf(BaseModel):
    """trainer.model.MoEConfig: experts, top_k, every, and the two auxiliary-loss coefficients."""

    model_config = ConfigDict(extra="forbid")
    experts: int = Field(8, ge=2)
    top_k: int = Field(2, ge=2)
    every: int = Field(1, ge=1)
    aux_loss_coef: float = Field(0.01, ge=0)
    router_z_loss_coef: float = Field(0.001, ge=0)


class ModelConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vocab_size: int | None = Field(None, ge=1)
    block_size: int = Field(128, ge=2)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    d_model: int = Field(128, ge=2)
    mlp: Literal["swiglu", "relu2"] = "swiglu"
    mlp_hidden: int | None = Field(None, ge=1)
    qk_norm: bool = False
    tie_embeddings: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    rope_theta: float = Field(10000.0, gt=0)
    norm_eps: float = Field(1e-5, gt=0)
    moe: MoEConf | None = None

    @model_validator(mode="after")
    def _shape(self) -> ModelConf:
        GPTConfig(**{**self.model_dump(), "vocab_size": self.vocab_size or 1})  # raises with the setting's name
        return self


class TrainConf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(8, ge=1)  # sequences per micro-batch per process
    grad_accum: int = Field(1, ge=1)
    max_steps: int = Field(200, ge=1)
    lr: float = Field(3e-3, gt=0)
    min_lr: float = Field(3e-4, ge=0)
    warmup_steps: int = Field(20, ge=0)
    lr_decay_steps: int | None = Field(None, ge=1)  # cosine horizon; default max_steps (set it to extend a run)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)  # 0 disables clipping
    # bfloat16 = autocast (weights and optimizer stay float32); auto = bfloat16 where the hardware has native bf16
    # matmuls (CUDA Ampere+, CPUs with AVX512-BF16/AMX), else float32. See trainer/precision.py.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 1337
    threads: int | None = Field(None, ge=1)  # CPU intra-op threads; default torch's. 1 avoids OpenMP stalls when
    # the cores are shared with other busy processes (a 2-thread step can then run 10-50x slower than 1 thread).
    eval_interval: int = Field(50, ge=1)
    eval_batches: int = Field(10, ge=1)
    log_interval: int = Field(1, ge=1)
    ckpt_interval: int = Field(100, ge=1)
    keep_last: int = Field(3, ge=1)
    tensorboard: bool = True
    verify_checksums: bool = True  # sha256 of every shard against the manifest, at start-up
    peak_tflops: float | None = Field(None, gt=0)  # for MFU; default: GPU table or a CPU estimate

    @model_validator(mode="after")
    def _lrs(self) -> TrainConf:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelConf = ModelConf()
    train: TrainConf = TrainConf()

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(**{**self.model.model_dump(), "vocab_size": vocab_size})


def apply_override(data: dict[str, Any], assignment: str) -> None:
    shared_override(data, assignment, TrainConfigError)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    data: dict[str, Any] = read_mapping(Path(path), TrainConfigError) if path is not None else {}
    source = str(path) if path is not None else "(defaults)"
    for assignment in overrides or []:
        apply_override(data, assignment)
    return validate(Config, data, f"invalid training configuration {source}", TrainConfigError)
