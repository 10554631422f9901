"""Hugging Face interchange with real transformers and PEFT on CPU: export, import, tokenizer, LoRA adapters."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, shared_data
from posttrain_fixtures import ALPACA, fixture_texts
from safetensors.torch import save_model

from corpus.tokenize.tokenizer import load_tokenizer
from trainer.chat import Message, render, render_prompt
from trainer.checkpoint import load_for_inference
from trainer.cli import main
from trainer.dpo import full_logits
from trainer.generate import generate
from trainer.model import GPT, GPTConfig

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

TRICKY = ["  two  spaces\tand\ttabs\n\nnewlines 12345 3.14", "emoji 😀🎉, accents üß, CJK 東京", "▁literal mark",
          "<|user|>hi<|end|><|assistant|>", "a<|end|>b", " ", "", "x" * 300]


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as e:
        assert e.code in (0, None), f"trainer {' '.join(args)} exited {e.code}"


def hf_logits(hf_model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(ids).logits.float()


def randomize_norms(model: GPT, seed: int = 0) -> GPT:
    """RMSNorm gains start at one, which would hide a swapped norm; make every one distinct."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
    return model


def save_ours(model: GPT, folder) -> None:
    folder.mkdir(parents=True)
    save_model(model, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.cfg.to_dict()))


def test_export_loads_as_llama_with_equal_logits_and_greedy_tokens(tiny_llama, tmp_path):
    cli("export", "--format", "hf", "--ckpt", str(tiny_llama.run_dir), "--out", str(tmp_path / "hf"))
    conf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert conf["model_type"] == "llama" and conf["tie_word_embeddings"] is False
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ours, _ = load_for_inference(tiny_llama.ckpt)
    ids = torch.randint(0, ours.cfg.vocab_size, (3, 70), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = full_logits(ours, ids)
    got = hf_logits(hf, ids)
    assert (got - expected).abs().max() < 1e-4, (got - expected).abs().max()
    assert not torch.allclose(got[:, :, :5], got[:, :, 5:10])  # a real, non-degenerate output

    sp = load_tokenizer(tiny_llama.tokenizer)
    stops = json.loads((tmp_path / "hf" / "generation_config.json").read_text())["eos_token_id"]
    assert sp.piece_to_id("<|end|>") in stops
    for text in ("First Citizen:\nBefore we proceed", "The quick brown fox"):
        prompt = [1, *sp.encode(text)]
        mine = generate(ours, prompt, 40, temperature=0.0, stop_ids=tuple(stops))
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False)[0, len(prompt):].tolist()
        if out and out[-1] in stops:
            out = out[:-1]
        assert out == mine and len(mine) > 5


def test_exported_tokenizer_encodes_like_sentencepiece_with_the_chat_template(tiny_llama, tmp_path):
    cli("export", "--format", "hf", "--ckpt", str(tiny_llama.ckpt), "--out", str(tmp_path / "hf"))
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    sp = load_tokenizer(tiny_llama.tokenizer)
    texts = fixture_texts()[::7] + [json.loads(line)["instruction"] for line in
                                    shared_data(*ALPACA).read_text().splitlines()] + TRICKY
    texts += [(REPO / "README.md").read_text()[:5000]]
    mismatched = [t[:60] for t in texts if tok.encode(t, add_special_tokens=False) != sp.encode(t)]
    assert not mismatched, mismatched
    assert tok("hello there").input_ids == [1, *sp.encode("hello there")]  # BOS first, as our documents
    for t in TRICKY:
        assert tok.decode(sp.encode(t)) == sp.decode(sp.encode(t))
    conv = [Message("system", "Be brief."), Message("user", "What is 2+2?"), Message("assistant", "4, I think."),
            Message("user", "Sure?")]
    as_dicts = [{"role": m.role, "content": m.content} for m in conv]
    prompt = tok.apply_chat_template(as_dicts, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert prompt["input_ids"] == render_prompt(conv, sp)
    full = tok.apply_chat_template(as_dicts[:3], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = render(conv[:3], sp)
    assert full["input_ids"] == ids and full["assistant_masks"] == mask


@pytest.mark.parametrize("qk_norm,tie", [(False, True), (True, False)])
def test_random_models_export_exactly_llama_or_qwen3(tmp_path, qk_norm, tie):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=160, block_size=48, n_layer=2, n_head=2, d_model=32, qk_norm=qk_norm,
                    tie_embeddings=tie, rope_theta=50_000.0, norm_eps=1e-6, mlp_hidden=80)
    model = randomize_norms(GPT(cfg)).eval()
    save_ours(model, tmp_path / "ours")
    cli("export", "--format", "hf", "--ckpt", str(tmp_path / "ours"), "--out", str(tmp_path / "hf"))
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == ("Qwen3ForCausalLM" if qk_norm else "LlamaForCausalLM")
    ids = torch.randint(0, cfg.vocab_size, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (hf_logits(hf, ids) - full_logits(model, ids)).abs().max() < 1e-5


def test_relu2_export_and_gqa_import_are_refused_with_a_reason(tmp_path, capsys):
    save_ours(GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, d_model=16, mlp="relu2")),
              tmp_path / "relu2")
    with pytest.raises(SystemExit) as e:
        main(["export", "--format", "hf", "--ckpt", str(tmp_path / "relu2"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "ReLU²" in capsys.readouterr().err
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "gqa")
    with pytest.raises(SystemExit) as e:
        main(["import", "--hf", str(tmp_path / "gqa"), "--out", str(tmp_path / "y")])
    assert e.value.code == 2 and "grouped-query attention" in capsys.readouterr().err


def test_import_of_a_random_transformers_llama_gives_its_logits(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=200, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                   rms_norm_eps=1e-5, tie_word_embeddings=False,
                                   rope_parameters={"rope_type": "default", "rope_theta": 20_000.0})
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "hf")
    cli("import", "--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ours"))
    ours, _ = load_for_inference(tmp_path / "ours")
    assert ours.cfg.rope_theta == 20_000.0 and not ours.cfg.tie_embeddings and ours.cfg.block_size == 64
    ids = torch.randint(0, 200, (2, 64), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (full_logits(ours, ids) - hf_logits(hf, ids)).abs().max() < 1e-5


def test_export_then_import_gives_identical_weights(tiny_base, tmp_path):
    cli("export", "--format", "hf", "--ckpt", str(tiny_base.ckpt), "--out", str(tmp_path / "hf"))
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "qwen3"  # QK-norm
    cli("import", "--hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back"))
    original, _ = load_for_inference(tiny_base.ckpt)
    back, folder = load_for_inference(tmp_path / "back")
    assert back.cfg == original.cfg
    a, b = original.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (folder / "tokenizer.model").read_bytes() == tiny_base.tokenizer.read_bytes()


def test_lora_adapter_in_peft_format_equals_our_merged_model(tiny_llama, tmp_path):
    peft = pytest.importorskip("peft")
    from trainer.checkpoint import load_base
    from trainer.posttrain import load_method_config
    from trainer.sft import SFTConf, train_sft

    conf, sconf = load_method_config(
        REPO / "conf" / "train" / "sft.yaml",
        ["train.threads=1", "train.tensorboard=false", "train.max_steps=4", "train.lr=2e-2", "train.warmup_steps=0",
         "train.lora_rank=4", "train.lora_alpha=16", "train.lora_targets=[qkv,proj,up,down,lm_head]",
         "train.batch_size=4", "train.ckpt_interval=4", "train.eval_interval=1000"], "sft", SFTConf)
    train_sft(conf, sconf, tiny_llama.ckpt, shared_data(*ALPACA), tmp_path / "sft", quiet=True)
    cli("export", "--format", "hf", "--ckpt", str(tiny_llama.ckpt), "--out", str(tmp_path / "base_hf"))
    cli("export", "--format", "peft", "--ckpt", str(tmp_path / "sft"), "--out", str(tmp_path / "adapter"),
        "--base-model", str(tmp_path / "base_hf"))
    adapter_conf = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_conf["r"] == 4 and "q_proj" in adapter_conf["target_modules"]

    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base_hf", dtype=torch.float32).eval()
    ids = torch.randint(0, base.config.vocab_size, (2, 60), generator=torch.Generator().manual_seed(3))
    before = hf_logits(base, ids)
    with_adapter = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    got = hf_logits(with_adapter, ids)
    merged, _, _ = load_base(tmp_path / "sft")
    with torch.no_grad():
        expected = full_logits(merged, ids)
    assert (got - expected).abs().max() < 1e-4
    assert (before - expected).abs().max() > 100 * (got - expected).abs().max()  # the adapter matters


def test_pretrain_init_from_a_transformers_folder_continues_its_weights(tiny_base, tiny_llama, tmp_path):
    """Continued pretraining: `--init-from` an HF export starts from its weights and architecture (the YAML's
    model section, here QK-norm and tied embeddings, is not used), records where it came from, and refuses
    shards of another tokenizer, a folder without one, and a resume that forgets the flag."""
    from trainer.checkpoint import CheckpointError, latest_checkpoint
    from trainer.config import TrainConfigError, load_config
    from trainer.pretrain import pretrain

    cli("export", "--format", "hf", "--ckpt", str(tiny_llama.ckpt), "--out", str(tmp_path / "hf"))
    tokens = tiny_base.run_dir.parent / "tokens"

    def cfg(steps: int):
        return load_config(REPO / "conf" / "train" / "tiny.yaml",
                           ["model.qk_norm=true", "model.tie_embeddings=true", "train.batch_size=4",
                            f"train.max_steps={steps}", "train.warmup_steps=0", "train.lr=1e-12", "train.min_lr=0",
                            "train.eval_interval=1", "train.eval_batches=1", "train.ckpt_interval=1",
                            "train.threads=1", "train.tensorboard=false"])

    summary = pretrain(cfg(1), tokens, tmp_path / "run", quiet=True, init_from=tmp_path / "hf")
    start, _ = load_for_inference(tiny_llama.ckpt)
    after, _ = load_for_inference(latest_checkpoint(tmp_path / "run"))
    assert after.cfg == start.cfg  # Llama-shaped: no QK-norm, untied
    a, b = start.state_dict(), after.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # lr 1e-12: one step barely moves a weight
    assert summary["val_loss"] < 6.0  # a fresh model's loss is about ln(1024) = 6.93
    info = json.loads((tmp_path / "run" / "run_config.json").read_text())["init_from"]
    assert info["format"] == "hf" and info["path"] == str((tmp_path / "hf").resolve())

    with pytest.raises(CheckpointError, match="--init-from"):  # the resume rebuilds the YAML's model otherwise
        pretrain(cfg(2), tokens, tmp_path / "run", resume=True, quiet=True)
    pretrain(cfg(2), tokens, tmp_path / "run", resume=True, quiet=True, init_from=tmp_path / "hf")
    assert latest_checkpoint(tmp_path / "run").name == "step_0000002"

    (tmp_path / "hf" / "tokenizer.model").write_bytes(b"another tokenizer")
    with pytest.raises(TrainConfigError, match="differs from the one the shards were encoded with"):
        pretrain(cfg(1), tokens, tmp_path / "run2", quiet=True, init_from=tmp_path / "hf")
    (tmp_path / "hf" / "tokenizer.model").unlink()
    with pytest.raises(TrainConfigError, match="no tokenizer.model"):
        pretrain(cfg(1), tokens, tmp_path / "run2", quiet=True, init_from=tmp_path / "hf")
