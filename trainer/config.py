"""Training configuration: YAML in conf/train/, `--set section.key=value` overrides, validated by pydantic.

The model section becomes `trainer.model.GPTConfig`; `model.vocab_size: null` takes the manifest's vocabulary
rounded up to a multiple of 64 (matmuls on such sizes are faster, and the extra rows are never targets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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


# Constrained types, so a subclass that changes a default keeps the constraint.
Count = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class StepConf(BaseModel):
    """The `train:` settings every method shares (pretraining, distillation, SFT, reward, DPO, PPO): the optimizer
    step, precision, device, seed and the loop's intervals. Defaults are pretraining's; PostTrainConf
    (trainer/posttrain.py) changes some of them to TRL's."""

    model_config = ConfigDict(extra="forbid")
    batch_size: Count = 8  # sequences (pretraining) or examples (post-training) per micro-batch per process
    grad_accum: Count = 1
    max_steps: Count = 200
    lr: Positive = 3e-3
    min_lr: NonNeg = 3e-4
    warmup_steps: NonNegInt = 20
    weight_decay: NonNeg = 0.1
    beta1: Beta = 0.9
    beta2: Beta = 0.95
    grad_clip: NonNeg = 1.0  # 0 disables clipping
    # bfloat16 = autocast (weights and optimizer stay float32); auto = bfloat16 where the hardware has native bf16
    # matmuls (CUDA Ampere+, CPUs with AVX512-BF16/AMX), else float32. See trainer/precision.py.
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 1337
    threads: Count | None = None  # CPU intra-op threads; default torch's. 1 avoids OpenMP stalls when
    # the cores are shared with other busy processes (a 2-thread step can then run 10-50x slower than 1 thread).
    eval_interval: Count = 50
    eval_batches: Count = 10
    log_interval: Count = 1
    ckpt_interval: Count = 100
    keep_last: Count = 3
    tensorboard: bool = True

    @model_validator(mode="after")
    def _lrs(self) -> StepConf:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        return self


class TrainConf(StepConf):
    """Pretraining's (and distillation's) `train:` section: the shared settings and these."""

    lr_decay_steps: Count | None = None  # cosine horizon; default max_steps (set it to extend a run)
    compile: bool = False
    verify_checksums: bool = True  # sha256 of every shard against the manifest, at start-up
    peak_tflops: Positive | None = None  # for MFU; default: GPU table or a CPU estimate


class DistillConf(BaseModel):
    """`trainer distill`: loss = (1 − alpha)·CE + alpha·T²·KL(teacher ‖ student), T = temperature (trainer/distill.py).
    Defaults are torchtune's knowledge-distillation recipe (kd_ratio 0.5, no temperature)."""

    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(1.0, gt=0)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: ModelConf = ModelConf()
    train: TrainConf = TrainConf()
    distill: DistillConf | None = None  # read by `trainer distill` only (its defaults when absent)

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
