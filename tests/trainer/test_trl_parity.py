"""Our post-training losses against TRL's own trainers on the same exported model, batch and hyperparameters.

Each test builds the TRL trainer (DPOTrainer, RewardTrainer, SFTTrainer) on the Hugging Face export of the tiny
Llama-shaped base, lets TRL tokenize the conversations with the exported chat template and collate them, and calls
its `compute_loss`; our side renders the same conversations with trainer/chat.py and computes our loss. Token ids,
losses and (for DPO and the reward model) every parameter's gradient must agree.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from conftest import shared_data
from posttrain_fixtures import ALPACA, HH
from safetensors.torch import save_model

from corpus.tokenize.tokenizer import load_tokenizer
from trainer.chat import encode_pair, load_conversations, load_preferences, render
from trainer.checkpoint import load_for_inference
from trainer.dpo import dpo_loss, sequence_logprobs
from trainer.hf import export_hf, to_hf_state_dict
from trainer.posttrain import lm_batch, pad_right
from trainer.reward import RewardModel, reward_loss
from trainer.sft import rows_from

transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

N = 4  # examples per batch


def trl_args(config_cls, tmp_path, **kw):
    # bf16=False: TRL's configs default to bf16 mixed precision, and accelerate then wraps the *reference* model's
    # forward in bf16 autocast while `compute_loss` called directly runs the policy in fp32. That alone moved the
    # DPO loss by 8e-4 relative; parity is checked in fp32 on both sides.
    return config_cls(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=N, report_to=[], use_cpu=True,
                      save_strategy="no", logging_strategy="no", seed=0, bf16=False, **kw)


def as_dicts(messages) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in messages]


def short_pairs(sp, block: int) -> list:
    pairs, _ = load_preferences(shared_data(*HH))
    fitting = [p for p in pairs if not encode_pair(p, sp, block).truncated]
    assert len(fitting) >= N
    return fitting[:N]


def assert_same_grads(ours: torch.nn.Module, theirs: torch.nn.Module, cfg, prefix: str = "") -> None:
    """Every gradient of `theirs` that maps onto one of ours (an unused output layer's is zero) is equal."""
    grads = {n[len(prefix):]: p.grad if p.grad is not None else torch.zeros_like(p)
             for n, p in ours.named_parameters() if n.startswith(prefix)}
    expected = to_hf_state_dict(grads, cfg)
    got = {n: p.grad for n, p in theirs.named_parameters() if n in expected}
    assert {n for n in expected if n.startswith("model.")} <= got.keys()
    scale = max(g.abs().max().item() for g in got.values())
    assert scale > 0
    for name in got:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6 * scale, msg=name)


@pytest.fixture(scope="module")
def exported(tiny_llama, tmp_path_factory):
    """(our policy, its HF export folder, a perturbed reference and its HF export, tokenizer, HF tokenizer)."""
    root = tmp_path_factory.mktemp("trl_parity")
    export_hf(tiny_llama.ckpt, root / "policy_hf")
    ref, _ = load_for_inference(tiny_llama.ckpt)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a reference different from the policy, so the DPO log-ratios are not all zero
        for p in ref.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    (root / "ref").mkdir()
    save_model(ref, str(root / "ref" / "model.safetensors"))
    (root / "ref" / "config.json").write_text(json.dumps(ref.cfg.to_dict()))
    (root / "ref" / "tokenizer.model").write_bytes(tiny_llama.tokenizer.read_bytes())
    export_hf(root / "ref", root / "ref_hf")
    return root, load_tokenizer(tiny_llama.tokenizer), transformers.AutoTokenizer.from_pretrained(root / "policy_hf")


def hf_model(folder, cls=None, **kw):
    cls = cls or transformers.AutoModelForCausalLM
    return cls.from_pretrained(folder, dtype=torch.float32, **kw)


def test_dpo_loss_and_gradients_equal_trl(tiny_llama, exported, tmp_path):
    root, sp, tok = exported
    policy, _ = load_for_inference(tiny_llama.ckpt)
    ref, _ = load_for_inference(root / "ref")
    block = policy.cfg.block_size
    pairs = short_pairs(sp, block)
    beta = 0.1  # both defaults

    examples = [{"prompt": as_dicts(p.prompt), "chosen": [{"role": "assistant", "content": p.chosen}],
                 "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    hf_policy = hf_model(root / "policy_hf")
    trainer = trl.DPOTrainer(model=hf_policy, ref_model=hf_model(root / "ref_hf"),
                             args=trl_args(trl.DPOConfig, tmp_path, beta=beta, max_length=block),
                             train_dataset=datasets.Dataset.from_list(examples), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(N)])
    theirs = trainer.compute_loss(trainer.model, batch)
    theirs.backward()

    enc = [encode_pair(p, sp, block) for p in pairs]
    seqs = [e.prompt + e.chosen for e in enc] + [e.prompt + e.rejected for e in enc]
    masks = [[0] * len(e.prompt) + [1] * len(e.chosen) for e in enc] + \
        [[0] * len(e.prompt) + [1] * len(e.rejected) for e in enc]
    ids, mask = pad_right(seqs), pad_right(masks, value=0)
    # TRL tokenized the same conversations through the exported chat template into the same ids and masks
    for i, seq in enumerate(seqs):
        assert batch["input_ids"][i, :len(seq)].tolist() == seq and int(batch["attention_mask"][i].sum()) == len(seq)
        assert batch["completion_mask"][i, :len(seq)].tolist() == masks[i]

    logps, _ = sequence_logprobs(policy, ids, mask)
    with torch.no_grad():
        ref_logps, _ = sequence_logprobs(ref, ids, mask)
    ours = dpo_loss(logps[:N], logps[N:], ref_logps[:N], ref_logps[N:], beta=beta).loss
    ours.backward()
    assert abs(ours.item() - 0.6931) > 1e-3  # not the trivial log 2 of policy == reference
    torch.testing.assert_close(theirs.detach(), ours.detach(), rtol=1e-5, atol=1e-6)
    assert_same_grads(policy, hf_policy, policy.cfg)


def test_reward_model_loss_and_gradients_equal_trl(tiny_llama, exported, tmp_path):
    root, sp, tok = exported
    base, _ = load_for_inference(tiny_llama.ckpt)
    torch.manual_seed(0)
    ours_rm = RewardModel.from_base(base)
    pairs = short_pairs(sp, base.cfg.block_size)

    hf_rm = hf_model(root / "policy_hf", transformers.AutoModelForSequenceClassification, num_labels=1)
    with torch.no_grad():
        hf_rm.score.weight.copy_(ours_rm.head.weight)
    examples = [{"prompt": as_dicts(p.prompt), "chosen": [{"role": "assistant", "content": p.chosen}],
                 "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    trainer = trl.RewardTrainer(model=hf_rm, args=trl_args(trl.RewardConfig, tmp_path),
                                train_dataset=datasets.Dataset.from_list(examples), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(N)])
    theirs = trainer.compute_loss(trainer.model, batch)
    theirs.backward()

    enc = [encode_pair(p, sp, base.cfg.block_size) for p in pairs]
    seqs = [e.prompt + e.chosen for e in enc] + [e.prompt + e.rejected for e in enc]
    for row, seq in zip(batch["input_ids"].tolist(), seqs):
        assert row[:len(seq)] == seq
    rewards = ours_rm(pad_right(seqs), torch.tensor([len(s) for s in seqs]))
    ours = reward_loss(rewards[:N], rewards[N:])
    ours.backward()
    torch.testing.assert_close(theirs.detach(), ours.detach(), rtol=1e-5, atol=1e-6)
    assert_same_grads(ours_rm, hf_rm, base.cfg, prefix="trunk.")
    torch.testing.assert_close(hf_rm.score.weight.grad, ours_rm.head.weight.grad, rtol=1e-4, atol=1e-7)


def test_sft_assistant_only_loss_equals_trl(tiny_llama, exported, tmp_path):
    root, sp, tok = exported
    model, _ = load_for_inference(tiny_llama.ckpt)
    block = model.cfg.block_size
    convs, _ = load_conversations(shared_data(*ALPACA))
    convs = [c for c in convs if len(render(c, sp)[0]) <= block][:N]

    hf = hf_model(root / "policy_hf")
    trainer = trl.SFTTrainer(model=hf, args=trl_args(trl.SFTConfig, tmp_path, assistant_only_loss=True,
                                                     max_length=block + 1, packing=False),
                             train_dataset=datasets.Dataset.from_list([{"messages": as_dicts(c)} for c in convs]),
                             processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(N)])
    theirs = trainer.compute_loss(trainer.model, batch)

    rows = rows_from(convs, sp, block + 1, Counter())
    for i, (ids, mask) in enumerate(rows):
        assert batch["input_ids"][i, :len(ids)].tolist() == ids
        assert batch["labels"][i, :len(ids)].tolist() == [t if m else -100 for t, m in zip(ids, mask)]
    x, y = lm_batch(rows)
    _, ours = model(x, y)
    assert (y != -1).sum() < (x != -1).numel() // 2  # the mask really drops most tokens
    torch.testing.assert_close(theirs.detach(), ours.detach(), rtol=1e-5, atol=1e-6)
