"""Mixture-of-experts: routing against a per-token reference, the auxiliary losses against their formulas, a
short pretraining run that logs them, and the Mixtral / Qwen3-MoE export checked with real transformers."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from safetensors.torch import load_file, save_model

from trainer.checkpoint import latest_checkpoint, load_for_inference
from trainer.cli import main
from trainer.config import TrainConfigError, load_config
from trainer.dpo import full_logits
from trainer.hf import HFExportError, export_hf
from trainer.model import GPT, GPTConfig, MoE
from trainer.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def moe_config(**kw) -> GPTConfig:
    base = dict(vocab_size=256, block_size=64, n_layer=4, n_head=4, d_model=64, mlp_hidden=96, qk_norm=False,
                tie_embeddings=False, moe={"experts": 4, "top_k": 2, "every": 1})
    return GPTConfig(**{**base, **kw})


def trained_like(model: GPT, seed: int = 0) -> GPT:
    """Random weights a little larger than init, and non-unit norm gains, so that routers prefer experts
    clearly (a near-uniform router would hide a wrong top-k) and a swapped norm would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g) if "norm" in name else
                    p * 3 if "router" in name else p)
    return model


def test_routing_is_dropless_top_k_renormalized_as_a_per_token_reference():
    torch.manual_seed(0)
    layer = trained_like(GPT(moe_config())).blocks[0].mlp
    assert isinstance(layer, MoE)
    x = torch.randn(3, 17, 64)
    got = layer(x)
    ref = torch.zeros_like(x)
    h = 96
    for b in range(3):
        for t in range(17):
            probs = F.softmax(layer.router(x[b, t]), -1)
            w, idx = probs.topk(2)
            w = w / w.sum()
            for weight, e in zip(w, idx.tolist()):
                gate_up = layer.gate_up[e] @ x[b, t]
                ref[b, t] += weight * (layer.down[e] @ (F.silu(gate_up[:h]) * gate_up[h:]))
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    load = layer.stats["load"]
    assert abs(float(load.sum()) - 1) < 1e-6 and (load > 0).all()  # every routed slot counted, once


def test_auxiliary_losses_follow_their_formulas_and_train_the_router():
    torch.manual_seed(1)
    model = trained_like(GPT(moe_config(moe={"experts": 4, "top_k": 2, "every": 2, "aux_loss_coef": 0.1,
                                             "router_z_loss_coef": 0.01})))
    assert [type(b.mlp).__name__ for b in model.blocks] == ["MLP", "MoE", "MLP", "MoE"]  # (i + 1) % every == 0
    ids = torch.randint(0, 256, (2, 30))
    model(ids, ids)
    expected = []
    x = model.wte(ids)
    cos, sin = model.rope_cos[:30], model.rope_sin[:30]
    for block in model.blocks:
        if isinstance(block.mlp, MoE):
            h = block.norm2(x + block.attn(block.norm1(x), cos, sin)).reshape(-1, 64)
            logits = block.mlp.router(h)
            probs = logits.softmax(-1)
            top = probs.topk(2).indices
            counts = torch.stack([(top == e).sum() for e in range(4)]).float()
            balance = 4 * ((counts / top.numel()) * probs.mean(0)).sum()
            z = (torch.logsumexp(logits, -1) ** 2).mean()
            expected.append(0.1 * balance + 0.01 * z)
        x = block(x, cos, sin)
    aux = model.aux_loss()
    assert torch.allclose(aux, sum(expected) / 2, rtol=1e-5)
    aux.backward()
    assert model.blocks[1].mlp.router.weight.grad.abs().sum() > 0
    metrics = model.moe_metrics()
    assert set(metrics) == {"moe_balance_loss", "moe_z_loss", *(f"expert_load_{e}" for e in range(4))}
    assert abs(sum(metrics[f"expert_load_{e}"] for e in range(4)) - 1) < 1e-6 and metrics["moe_balance_loss"] >= 1
    dense = GPT(moe_config(moe=None))
    assert dense.aux_loss() == 0 and dense.moe_metrics() == {}


def test_active_parameters_count_top_k_experts():
    moe, dense = GPT(moe_config()), GPT(moe_config(moe=None, mlp_hidden=192))
    router = 4 * 64 * 4
    assert moe.num_params(active=True) == dense.num_params() + router
    assert moe.num_params() == dense.num_params() + router + 4 * 2 * 3 * 64 * 96  # 2 more experts per layer


def test_bad_moe_settings_are_refused_with_the_setting_named():
    for sets, message in ((["model.moe={experts: 4, top_k: 1}"], "top_k"),
                          (["model.moe={experts: 1, top_k: 2}"], "experts"),
                          (["model.moe={experts: 4, top_k: 5}"], "top_k"),
                          (["model.moe={experts: 4, every: 9}"], "every"),
                          (["model.moe={experts: 4, topk: 2}"], "topk"),
                          (["model.mlp=relu2", "model.moe={experts: 4}"], "swiglu")):
        with pytest.raises(TrainConfigError, match=message):
            load_config(REPO / "conf" / "train" / "tiny.yaml", sets)


def test_pretraining_logs_expert_load_and_aux_losses_and_learns(tiny_base, tmp_path):
    sets = ["model.d_model=64", "model.n_layer=2", "model.block_size=64", "model.mlp_hidden=64",
            "model.moe={experts: 4, top_k: 2, every: 1}", "train.batch_size=8", "train.max_steps=30",
            "train.warmup_steps=5", "train.eval_interval=30", "train.eval_batches=2", "train.ckpt_interval=30",
            "train.log_interval=1", "train.threads=1", "train.tensorboard=false"]
    result = pretrain(load_config(REPO / "conf" / "train" / "tiny.yaml", sets), tiny_base.run_dir.parent / "tokens",
                      tmp_path / "run", quiet=True)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == 30 and train[-1]["loss"] < train[0]["loss"] - 1
    for r in train:
        loads = [r[f"expert_load_{e}"] for e in range(4)]
        assert abs(sum(loads) - 1) < 1e-5 and r["moe_balance_loss"] >= 1 - 1e-5 and r["moe_z_loss"] > 0
    assert max(train[-1][f"expert_load_{e}"] for e in range(4)) < 0.5  # the balance loss keeps all 4 in use
    model, _ = load_for_inference(latest_checkpoint(tmp_path / "run"))
    assert model.cfg.moe.experts == 4 and result["val_loss"] is not None


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as e:
        assert e.code in (0, None), f"trainer {' '.join(args)} exited {e.code}"


def save_ours(model: GPT, folder) -> None:
    folder.mkdir(parents=True)
    save_model(model, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.cfg.to_dict()))


@pytest.mark.parametrize(("qk_norm", "every", "arch"), [(False, 1, "MixtralForCausalLM"),
                                                        (True, 2, "Qwen3MoeForCausalLM")])
def test_export_loads_in_transformers_with_equal_logits_and_imports_back_bit_identical(tmp_path, qk_norm, every,
                                                                                       arch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(2)
    ours = trained_like(GPT(moe_config(qk_norm=qk_norm, moe={"experts": 4, "top_k": 2, "every": every,
                                                             "aux_loss_coef": 0.02, "router_z_loss_coef": 0.003})))
    save_ours(ours, tmp_path / "ours")
    cli("export", "--format", "hf", "--ckpt", str(tmp_path / "ours"), "--out", str(tmp_path / "hf"))
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == arch
    ids = torch.randint(0, 256, (3, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = full_logits(ours.eval(), ids), hf(ids).logits.float()
    assert (got - expected).abs().max() < 1e-4, (got - expected).abs().max()
    # the routing matters: logits with each MoE layer's experts permuted differ
    assert not torch.allclose(got[:, :, :5], got[:, :, 5:10])
    cli("import", "--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"))
    back = load_file(str(tmp_path / "back" / "model.safetensors"))
    original = load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert back.keys() == original.keys() and all(torch.equal(back[k], original[k]) for k in original)
    assert json.loads((tmp_path / "back" / "config.json").read_text()) == ours.cfg.to_dict()
    # transformers' own save_pretrained (fused expert tensors) imports to the same weights
    hf.save_pretrained(tmp_path / "resaved")
    cli("import", "--hf", str(tmp_path / "resaved"), "--out", str(tmp_path / "back2"))
    back2 = load_file(str(tmp_path / "back2" / "model.safetensors"))
    assert all(torch.equal(back2[k], original[k]) for k in original)


def test_mixtral_cannot_hold_dense_layers_so_every_above_one_without_qk_norm_is_refused(tmp_path):
    save_ours(GPT(moe_config(moe={"experts": 4, "top_k": 2, "every": 2})), tmp_path / "ours")
    with pytest.raises(HFExportError, match="Mixtral has experts in every layer"):
        export_hf(tmp_path / "ours", tmp_path / "hf")
