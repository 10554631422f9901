"""LoRA on our GPT with real torch: only adapters train, merging is exact, checkpoints hold adapters only."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from trainer.checkpoint import save_checkpoint
from trainer.lora import LoRALinear, apply_lora, lora_state_dict, merge_lora
from trainer.model import GPT, GPTConfig
from trainer.optim import make_optimizer
from trainer.posttrain import PostTrainConf

CFG = GPTConfig(vocab_size=96, block_size=32, n_layer=2, n_head=2, d_model=32)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def lora_model(seed: int = 0, cfg: GPTConfig = CFG, **kw) -> tuple[GPT, GPT]:
    torch.manual_seed(seed)
    base = GPT(cfg)
    model = GPT(cfg)
    model.load_state_dict(base.state_dict())
    return base, apply_lora(model, **{"rank": 4, "alpha": 8.0, **kw})


def train_steps(model: GPT, steps: int = 5) -> None:
    opt = make_optimizer(model, PostTrainConf(lr=1e-2), torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randint(0, CFG.vocab_size, (4, 16), generator=gen)
        _, loss = model(x, torch.roll(x, -1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_fresh_adapter_changes_nothing_and_targets_are_wrapped():
    base, model = lora_model()
    x = torch.randint(0, CFG.vocab_size, (2, 16))
    assert torch.equal(base(x, x)[0], model(x, x)[0])  # B starts at zero
    wrapped = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert len(wrapped) == 4 * CFG.n_layer  # qkv, proj, up, down per block
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.lora_{ab}" for n in wrapped for ab in "AB"}


def test_only_adapter_parameters_change():
    _, model = lora_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_steps(model)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith((".lora_A", ".lora_B")) for k in changed)
    assert any(k.endswith(".lora_B") for k in changed)  # B left zero: the adapter really learned


def test_merged_model_gives_the_same_logits_as_base_plus_adapter():
    untied = GPTConfig(**{**CFG.to_dict(), "tie_embeddings": False})  # a tied lm_head cannot take an adapter
    _, model = lora_model(cfg=untied, targets=("qkv", "proj", "up", "down", "lm_head"), dropout=0.1)
    train_steps(model)
    model.eval()  # adapter dropout off, as at inference
    x = torch.randint(0, CFG.vocab_size, (3, 24))
    with torch.no_grad():
        adapted = model(x, x)[0]
        merged = merge_lora(model)
        assert not any(isinstance(m, LoRALinear) for m in merged.modules())
        plain = GPT(untied)
        plain.load_state_dict(merged.state_dict())  # a plain model of the base architecture takes the weights
        torch.testing.assert_close(plain(x, x)[0], adapted, atol=1e-5, rtol=0)


def test_checkpoint_holds_only_adapter_tensors(tmp_path):
    _, model = lora_model()
    train_steps(model, 1)
    tok = tmp_path / "tokenizer.model"
    tok.write_bytes(b"placeholder")  # the checkpoint copies whatever tokenizer file the run names
    opt = make_optimizer(model, PostTrainConf(), torch.device("cpu"))
    folder = save_checkpoint(tmp_path / "run", 1, model, opt, {"rng": []}, tok, keep_last=2)
    assert not (folder / "model.safetensors").exists()
    saved = load_file(str(folder / "adapter.safetensors"))
    assert set(saved) == set(lora_state_dict(model))
    assert sum(t.numel() for t in saved.values()) < 0.2 * sum(p.numel() for p in model.parameters())


def test_bad_targets_and_rank_are_refused():
    with pytest.raises(ValueError, match="match no Linear"):
        apply_lora(GPT(CFG), 4, 8.0, targets=("qkv", "nope"))
    with pytest.raises(ValueError, match="tied embeddings"):
        apply_lora(GPT(CFG), 4, 8.0, targets=("lm_head",))
    with pytest.raises(ValueError, match="rank"):
        apply_lora(GPT(CFG), 0, 8.0)
