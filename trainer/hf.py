"""Hugging Face interchange: export our GPT as a transformers Llama (or Qwen3) folder, import one back, and write
LoRA adapters in PEFT's format.

Mapping (exact, no approximation):

    ours                          Llama (transformers)
    wte                           model.embed_tokens
    blocks.i.norm1 / norm2        model.layers.i.input_layernorm / post_attention_layernorm
    blocks.i.attn.qkv  (3d, d)    self_attn.q_proj / k_proj / v_proj: rows [0:d], [d:2d], [2d:3d]
    blocks.i.attn.proj            self_attn.o_proj
    blocks.i.mlp.up    (2h, d)    mlp.gate_proj / up_proj: rows [0:h], [h:2h] (SwiGLU: silu(gate) * up)
    blocks.i.mlp.down             mlp.down_proj
    norm, lm_head                 model.norm, lm_head (omitted and tie_word_embeddings true when tied)

RoPE needs no permutation: our rotation pairs channel j with j + hd/2 (x·cos + swap_halves(x)·sin, with the first
half of the sin table negated), which is exactly transformers' `rotate_half` convention (x·cos + rotate_half(x)·sin,
rotate_half = cat(-x2, x1)); the frequencies are theta^(-2j/hd) in both. Meta's original checkpoints interleave
pairs instead, which is why their conversion script permutes q/k; ours must not.

QK-norm models (SwiGLU) map exactly onto Qwen3 (per-head RMSNorm on q and k before RoPE: `q_norm`, `k_norm`).

Mixture-of-experts models (model.moe) map onto Mixtral, or Qwen3-MoE with QK-norm. Both route as ours: softmax
over all experts in float32, the top k, renormalized (Mixtral always; Qwen3-MoE with norm_topk_prob true). Written
in the Hub's per-expert layout, which transformers fuses on load and vLLM and llama.cpp read:

    blocks.i.mlp.router           Mixtral block_sparse_moe.gate       Qwen3-MoE mlp.gate
    blocks.i.mlp.gate_up[e]       experts.e.w1 / w3 (gate / up)       mlp.experts.e.gate_proj / up_proj
    blocks.i.mlp.down[e]          experts.e.w2                        mlp.experts.e.down_proj

Mixtral has experts in every layer; with `every` > 1 only Qwen3-MoE's decoder_sparse_step (layer i sparse when
(i + 1) % step == 0, as ours) matches, so such a model without QK-norm is refused. transformers' save_pretrained
writes the per-expert layout back, so its folders import too.
ReLU² models have no transformers architecture with an ungated ReLU² MLP, RMSNorm and RoPE (Nemotron's uses
LayerNorm1P), so they are refused.

The tokenizer is converted to a `tokenizer.json` (a `tokenizers` BPE with byte fallback, merges ranked by the
sentencepiece scores) that encodes text to the same ids as our sentencepiece model, with `<s>` prepended as our
documents and chat template do; `tokenizer_config.json` carries the chat template (trainer/chat.py's, as Jinja).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from corpus.tokenize.shards import sha256_file
from trainer.checkpoint import CheckpointError
from trainer.model import GPT, GPTConfig


class HFExportError(CheckpointError):
    """A model or tokenizer that has no exact Hugging Face equivalent, or a folder we cannot import."""


# The chat template of trainer/chat.py as Jinja: BOS, then <|role|> content <|end|> per message, and <|assistant|>
# for a generation prompt. {% generation %} marks the assistant replies and their <|end|>, which is exactly our SFT
# loss mask (transformers' return_assistant_tokens_mask and TRL's assistant_only_loss read it).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles are system, user and assistant, got ' + message['role']) }}{% endif %}"
    "{% if message['role'] == 'system' and not loop.first %}"
    "{{ raise_exception('a system message must come first') }}{% endif %}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|end|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


# -- weights --------------------------------------------------------------------------------------------------------
def check_exportable(cfg: GPTConfig) -> str:
    """The transformers architecture our config maps onto exactly ("llama", "qwen3", "mixtral", "qwen3_moe"), or
    a clear refusal."""
    if cfg.mlp != "swiglu":
        raise HFExportError(f"model.mlp={cfg.mlp!r}: no transformers architecture has an ungated ReLU² MLP with "
                            "RMSNorm and RoPE, so this model cannot be exported exactly (train with mlp: swiglu)")
    if cfg.moe is not None:
        if not cfg.qk_norm and cfg.moe.every != 1:
            raise HFExportError(f"model.moe.every={cfg.moe.every} without QK-norm: Mixtral has experts in every "
                                "layer, so this model has no exact transformers equivalent (Qwen3-MoE's "
                                "decoder_sparse_step would match, but it has QK-norm: train with model.qk_norm true "
                                "or moe.every 1)")
        return "qwen3_moe" if cfg.qk_norm else "mixtral"
    return "qwen3" if cfg.qk_norm else "llama"


def _moe_names(arch: str, dst: str, e: int) -> tuple[str, str, str]:
    """(gate, up, down) weight names of expert e in layer prefix dst."""
    if arch == "mixtral":
        return tuple(f"{dst}block_sparse_moe.experts.{e}.{w}.weight" for w in ("w1", "w3", "w2"))
    return tuple(f"{dst}mlp.experts.{e}.{w}_proj.weight" for w in ("gate", "up", "down"))


def _router_name(arch: str, dst: str) -> str:
    return f"{dst}block_sparse_moe.gate.weight" if arch == "mixtral" else f"{dst}mlp.gate.weight"


def to_hf_state_dict(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Our tensors (weights, or gradients of them) under transformers' names, fused matrices split."""
    arch = check_exportable(cfg)
    d, h = cfg.d_model, cfg.hidden
    out = {"model.embed_tokens.weight": sd["wte.weight"], "model.norm.weight": sd["norm.weight"]}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(cfg.n_layer):
        src, dst = f"blocks.{i}.", f"model.layers.{i}."
        qkv = sd[src + "attn.qkv.weight"]
        out.update({
            dst + "input_layernorm.weight": sd[src + "norm1.weight"],
            dst + "post_attention_layernorm.weight": sd[src + "norm2.weight"],
            dst + "self_attn.q_proj.weight": qkv[:d], dst + "self_attn.k_proj.weight": qkv[d:2 * d],
            dst + "self_attn.v_proj.weight": qkv[2 * d:], dst + "self_attn.o_proj.weight": sd[src + "attn.proj.weight"],
        })
        if cfg.is_moe(i):
            out[_router_name(arch, dst)] = sd[src + "mlp.router.weight"]
            gate_up, down = sd[src + "mlp.gate_up"], sd[src + "mlp.down"]
            for e in range(cfg.moe.experts):
                gate, up, dn = _moe_names(arch, dst, e)
                out.update({gate: gate_up[e, :h], up: gate_up[e, h:], dn: down[e]})
        else:
            up = sd[src + "mlp.up.weight"]
            out.update({dst + "mlp.gate_proj.weight": up[:h], dst + "mlp.up_proj.weight": up[h:],
                        dst + "mlp.down_proj.weight": sd[src + "mlp.down.weight"]})
        if cfg.qk_norm:
            out[dst + "self_attn.q_norm.weight"] = sd[src + "attn.q_norm.weight"]
            out[dst + "self_attn.k_norm.weight"] = sd[src + "attn.k_norm.weight"]
    return {k: v.detach().contiguous() for k, v in out.items()}


def from_hf_state_dict(hf: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """transformers Llama/Qwen3/Mixtral/Qwen3-MoE tensors under our names, q/k/v and gate/up fused, experts
    stacked."""
    arch = check_exportable(cfg)
    def take(name: str) -> torch.Tensor:
        if name not in hf:
            raise HFExportError(f"tensor {name} missing from the checkpoint")
        return hf[name]

    out = {"wte.weight": take("model.embed_tokens.weight"), "norm.weight": take("model.norm.weight")}
    out["lm_head.weight"] = out["wte.weight"] if cfg.tie_embeddings else take("lm_head.weight")
    for i in range(cfg.n_layer):
        src, dst = f"model.layers.{i}.", f"blocks.{i}."
        out.update({
            dst + "norm1.weight": take(src + "input_layernorm.weight"),
            dst + "norm2.weight": take(src + "post_attention_layernorm.weight"),
            dst + "attn.qkv.weight": torch.cat([take(src + f"self_attn.{p}_proj.weight") for p in "qkv"]),
            dst + "attn.proj.weight": take(src + "self_attn.o_proj.weight"),
        })
        if cfg.is_moe(i):
            out[dst + "mlp.router.weight"] = take(_router_name(arch, src))
            names = [_moe_names(arch, src, e) for e in range(cfg.moe.experts)]
            out[dst + "mlp.gate_up"] = torch.stack([torch.cat([take(g), take(u)]) for g, u, _ in names])
            out[dst + "mlp.down"] = torch.stack([take(dn) for _, _, dn in names])
        else:
            out[dst + "mlp.up.weight"] = torch.cat([take(src + "mlp.gate_proj.weight"),
                                                    take(src + "mlp.up_proj.weight")])
            out[dst + "mlp.down.weight"] = take(src + "mlp.down_proj.weight")
        if cfg.qk_norm:
            out[dst + "attn.q_norm.weight"] = take(src + "self_attn.q_norm.weight")
            out[dst + "attn.k_norm.weight"] = take(src + "self_attn.k_norm.weight")
    return out


def hf_config(cfg: GPTConfig, special: dict[str, int] | None = None) -> dict:
    """config.json for transformers (LlamaConfig, or Qwen3Config for QK-norm models; MixtralConfig or
    Qwen3MoeConfig for MoE ones)."""
    arch = check_exportable(cfg)
    special = special or {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}
    classes = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "mixtral": "MixtralForCausalLM",
               "qwen3_moe": "Qwen3MoeForCausalLM"}
    conf = {
        "architectures": [classes[arch]],
        "model_type": arch,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.block_size,
        "rms_norm_eps": cfg.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_theta": cfg.rope_theta,  # older readers (transformers 4.x, llama.cpp, vLLM) look here
        "rope_scaling": None,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "dtype": "float32",
        **special,
    }
    if arch == "llama":
        conf.update({"mlp_bias": False, "pretraining_tp": 1})
    elif arch == "mixtral":
        conf.update({"sliding_window": None, "router_jitter_noise": 0.0})
    else:
        conf.update({"use_sliding_window": False, "sliding_window": None, "max_window_layers": cfg.n_layer,
                     "layer_types": ["full_attention"] * cfg.n_layer})
    if cfg.moe is not None:
        m = cfg.moe
        conf.update({"num_experts_per_tok": m.top_k, "router_aux_loss_coef": m.aux_loss_coef,
                     "output_router_logits": False,
                     "router_z_loss_coef": m.router_z_loss_coef})  # ours, kept for `trainer import`
        if arch == "mixtral":
            conf["num_local_experts"] = m.experts
        else:
            conf.update({"num_experts": m.experts, "moe_intermediate_size": cfg.hidden,
                         "decoder_sparse_step": m.every, "mlp_only_layers": [], "norm_topk_prob": True})
    return conf


def gpt_config_from_hf(conf: dict, block_size: int | None = None) -> GPTConfig:
    """Our GPTConfig for a transformers Llama or Qwen3 config.json; anything without an exact match is refused."""
    arch = conf.get("model_type")
    if arch not in ("llama", "qwen3", "mixtral", "qwen3_moe"):
        raise HFExportError(f"model_type {arch!r}: only llama, qwen3 (QK-norm), mixtral and qwen3_moe checkpoints "
                            "can be imported")
    n_head, d = conf["num_attention_heads"], conf["hidden_size"]
    problems = []
    if conf.get("num_key_value_heads", n_head) != n_head:
        problems.append(f"grouped-query attention ({conf['num_key_value_heads']} key/value heads for {n_head} "
                        "query heads); our attention has one key/value head per query head")
    if conf.get("head_dim") not in (None, d // n_head):
        problems.append(f"head_dim {conf['head_dim']} != hidden_size / num_attention_heads")
    if conf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {conf['hidden_act']!r} (ours is SwiGLU: silu)")
    if conf.get("attention_bias") or conf.get("mlp_bias"):
        problems.append("biases in attention or MLP (ours has none)")
    rope = conf.get("rope_parameters") or conf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        problems.append(f"RoPE scaling {rope.get('rope_type', rope.get('type'))!r} (ours is plain RoPE)")
    if arch in ("qwen3", "qwen3_moe") and conf.get("use_sliding_window") or \
            arch == "mixtral" and conf.get("sliding_window") is not None:
        problems.append("sliding-window attention")
    moe = None
    hidden = conf.get("intermediate_size")
    if arch == "mixtral":
        moe = {"experts": conf.get("num_local_experts", 8), "top_k": conf.get("num_experts_per_tok", 2), "every": 1}
    elif arch == "qwen3_moe":
        # transformers 5 saves Qwen3MoeConfig.num_experts as num_local_experts
        moe = {"experts": conf.get("num_experts", conf.get("num_local_experts", 128)),
               "top_k": conf.get("num_experts_per_tok", 8),
               "every": conf.get("decoder_sparse_step", 1)}
        if conf.get("mlp_only_layers"):
            problems.append(f"mlp_only_layers {conf['mlp_only_layers']} (our dense layers follow "
                            "decoder_sparse_step only)")
        if not conf.get("norm_topk_prob", False):
            problems.append("norm_topk_prob false (ours renormalizes the top-k routing weights)")
        if moe["every"] > 1 and hidden != conf.get("moe_intermediate_size"):
            problems.append(f"dense intermediate_size {hidden} != moe_intermediate_size "
                            f"{conf.get('moe_intermediate_size')} (ours has one hidden size)")
        hidden = conf.get("moe_intermediate_size", hidden)
    if moe is not None:
        moe.update(aux_loss_coef=float(conf.get("router_aux_loss_coef", 0.01)),
                   router_z_loss_coef=float(conf.get("router_z_loss_coef", 0.001)))
        if moe["top_k"] < 2:
            problems.append(f"top-{moe['top_k']} routing (ours routes to 2 experts or more)")
    if problems:
        raise HFExportError("cannot import exactly: " + "; ".join(problems))
    theta = rope.get("rope_theta", conf.get("rope_theta", 10000.0))
    if hidden == 64 * math.ceil(8 * d / 3 / 64):
        hidden = None  # our default for this width: keep the config as it was written before export
    try:
        return GPTConfig(vocab_size=conf["vocab_size"], block_size=block_size or conf["max_position_embeddings"],
                         n_layer=conf["num_hidden_layers"], n_head=n_head, d_model=d, mlp="swiglu",
                         mlp_hidden=hidden, qk_norm=arch in ("qwen3", "qwen3_moe"), moe=moe,
                         tie_embeddings=bool(conf.get("tie_word_embeddings", False)), rope_theta=float(theta),
                         norm_eps=float(conf.get("rms_norm_eps", 1e-6)))
    except (KeyError, ValueError) as e:
        raise HFExportError(f"unusable config.json: {e}") from None


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a transformers folder: model.safetensors, or the shards its index names."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise HFExportError(f"{folder}: no model.safetensors (pytorch_model.bin is pickle and is not read)")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(folder / f)))
    return out


# -- tokenizer ------------------------------------------------------------------------------------------------------
def _sp_proto(path: Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    return proto


def hf_tokenizer_json(sp_model: Path) -> str:
    """tokenizer.json (the `tokenizers` library's format) equivalent to our sentencepiece BPE model.

    Sentencepiece's BPE encoder repeatedly merges the adjacent pair whose concatenation is the highest-scored
    piece; a `tokenizers` BPE whose merges are every split of every piece, ranked by that piece's score, does
    the same. Control pieces (<unk> <s> </s> <pad>) and user-defined ones (the chat tokens) become added tokens,
    matched whole in the text as sentencepiece matches user-defined symbols.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    proto = _sp_proto(sp_model)
    ts, ns = proto.trainer_spec, proto.normalizer_spec
    if ts.model_type != ts.BPE or not ts.byte_fallback:
        raise HFExportError(f"{sp_model}: only BPE sentencepiece models with byte fallback convert exactly "
                            "(corpus tokenize trains those)")
    if ns.add_dummy_prefix or ns.remove_extra_whitespaces or ns.name not in ("identity", ""):
        raise HFExportError(f"{sp_model}: normalization {ns.name!r} (dummy prefix {ns.add_dummy_prefix}, "
                            f"whitespace removal {ns.remove_extra_whitespaces}) has no exact tokenizers equivalent "
                            "here; corpus tokenize trains with identity normalization and neither")
    pieces = proto.pieces
    vocab = {p.piece: i for i, p in enumerate(pieces)}
    NORMAL, UNKNOWN, CONTROL, USER = 1, 2, 3, 4
    merges = []
    for i, p in enumerate(pieces):
        if p.type != NORMAL:
            continue
        s = p.piece
        for k in range(1, len(s)):
            left, right = s[:k], s[k:]
            if left in vocab and right in vocab:
                merges.append((-p.score, i, vocab[left], vocab[right], left, right))
    merges.sort()
    unk = next(p.piece for p in pieces if p.type == UNKNOWN)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(m[4], m[5]) for m in merges], unk_token=unk, fuse_unk=True,
                               byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")  # sentencepiece's whitespace escape; no dummy prefix
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(p.piece, special=True, normalized=False)
                            for p in pieces if p.type in (UNKNOWN, CONTROL, USER)])
    bos = pieces[ts.bos_id].piece
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, ts.bos_id)])
    return tok.to_str(pretty=True)


def hf_tokenizer_config(sp_model: Path, block_size: int) -> dict:
    proto = _sp_proto(sp_model)
    ts, pieces = proto.trainer_spec, proto.pieces
    added = {str(i): {"content": p.piece, "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False, "special": True}
             for i, p in enumerate(pieces) if p.type in (2, 3, 4)}
    names = {p.piece for p in pieces}
    conf = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": pieces[ts.bos_id].piece, "eos_token": pieces[ts.eos_id].piece,
        "unk_token": pieces[ts.unk_id].piece, "pad_token": pieces[ts.pad_id].piece,
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": block_size, "added_tokens_decoder": added,
    }
    if {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>"} <= names:
        conf["chat_template"] = CHAT_TEMPLATE
    return conf


# -- export / import ------------------------------------------------------------------------------------------------
def _load_policy(path: str | Path) -> tuple[GPT, Path]:
    """A GPT from a checkpoint, run folder or export; a LoRA checkpoint comes back merged."""
    from trainer.checkpoint import load_base, load_for_inference, read_state, resolve_checkpoint

    folder = resolve_checkpoint(path)
    state = read_state(folder)
    if state.get("method") == "reward":
        raise HFExportError(f"{folder} is a reward model; only language models export to the HF format")
    if state.get("lora"):
        model, folder, _ = load_base(folder)
        return model, folder
    return load_for_inference(folder)


def export_hf(path: str | Path, out: str | Path) -> Path:
    """Write a transformers folder: config.json, generation_config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json (with the chat template), and tokenizer.model (so `trainer import` gets it back)."""
    model, folder = _load_policy(path)
    cfg = model.cfg
    check_exportable(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sp_model = folder / "tokenizer.model"
    special = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}
    stop = [2, 1]  # </s>, and <s>: our shards separate documents with BOS only, so a model ends one with it
    if sp_model.exists():
        proto = _sp_proto(sp_model)
        ts = proto.trainer_spec
        special = {"bos_token_id": ts.bos_id, "eos_token_id": ts.eos_id, "pad_token_id": ts.pad_id}
        stop = [ts.eos_id, ts.bos_id]
        end = [i for i, p in enumerate(proto.pieces) if p.piece == "<|end|>"]
        stop += end  # a chat model ends its reply with <|end|>
        (out / "tokenizer.json").write_text(hf_tokenizer_json(sp_model))
        (out / "tokenizer_config.json").write_text(json.dumps(hf_tokenizer_config(sp_model, cfg.block_size),
                                                              indent=1))
        shutil.copyfile(sp_model, out / "tokenizer.model")
    (out / "config.json").write_text(json.dumps(hf_config(cfg, special), indent=1))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": special["bos_token_id"], "eos_token_id": stop, "pad_token_id": special["pad_token_id"]},
        indent=1))
    save_file(to_hf_state_dict(model.state_dict(), cfg), str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def load_hf(folder: str | Path, block_size: int | None = None) -> GPT:
    """Our GPT holding the weights of a transformers Llama/Qwen3 folder (exactly; fp32)."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise HFExportError(f"{folder}: no config.json (not a transformers model folder)")
    cfg = gpt_config_from_hf(json.loads((folder / "config.json").read_text()), block_size)
    sd = from_hf_state_dict(read_hf_weights(folder), cfg)
    model = GPT(cfg)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if not k.startswith("rope_")]
    if missing or unexpected:
        raise HFExportError(f"{folder}: weights do not fit (missing {missing}, unexpected {unexpected})")
    return model.eval()


def import_hf(folder: str | Path, out: str | Path, block_size: int | None = None) -> Path:
    """A transformers Llama/Qwen3 folder as our export folder (config.json, model.safetensors, tokenizer.model
    when the folder has a sentencepiece model), which --base of sft/reward/dpo/ppo and `generate` read."""
    from safetensors.torch import save_model

    folder, out = Path(folder), Path(out)
    model = load_hf(folder, block_size)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=1))
    if (folder / "tokenizer.model").exists():
        shutil.copyfile(folder / "tokenizer.model", out / "tokenizer.model")
    return out


def is_hf_folder(folder: Path) -> bool:
    """A transformers model folder: its config.json names a `model_type` (ours never does)."""
    try:
        return "model_type" in json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False


def load_init(path: str | Path) -> tuple[GPT, Path | None, dict]:
    """The starting weights of `trainer pretrain --init-from`: a transformers Llama/Qwen3 folder, or one of ours
    (checkpoint, run folder, export). Returns (model, its tokenizer.model or None, provenance for run_config.json).
    A LoRA checkpoint holds adapters only: merge it first (`trainer merge-lora`)."""
    from trainer.checkpoint import load_for_inference, read_state, resolve_checkpoint, weights_sha256

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"--init-from {path}: no such folder")
    if is_hf_folder(path):
        model = load_hf(path)
        folder, fmt = path, "hf"
        weights = sorted(path.glob("*.safetensors"))
        sha = ",".join(sha256_file(w) for w in weights)
    else:
        folder = resolve_checkpoint(path)
        if read_state(folder).get("lora"):
            raise CheckpointError(f"--init-from {folder}: a LoRA checkpoint holds adapters only; merge it first "
                                  f"(`trainer merge-lora --ckpt {folder} --out MERGED`) and start from MERGED")
        if read_state(folder).get("method") == "reward":
            raise CheckpointError(f"--init-from {folder}: a reward model checkpoint is not a language model")
        model, _ = load_for_inference(folder)
        fmt, sha = "ours", weights_sha256(folder)
    tokenizer = folder / "tokenizer.model"
    return model, tokenizer if tokenizer.exists() else None, {"path": str(folder.resolve()), "format": fmt,
                                                               "sha256": sha}


# -- LoRA in PEFT's format ------------------------------------------------------------------------------------------
PEFT_TARGETS = {"qkv": ["q_proj", "k_proj", "v_proj"], "proj": ["o_proj"], "up": ["gate_proj", "up_proj"],
                "down": ["down_proj"], "lm_head": ["lm_head"]}


def peft_adapter(adapters: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Our adapter tensors ("blocks.0.attn.qkv.lora_A", ...) as PEFT's for the exported model.

    A fused matrix's delta B·A splits by rows of B: q/k/v (and gate/up) each get the shared A and their rows of
    B, so every split projection's delta is exactly its rows of ours.
    """
    check_exportable(cfg)
    d, h = cfg.d_model, cfg.hidden
    out = {}
    for name, t in adapters.items():
        if not name.endswith((".lora_A", ".lora_B")):
            raise HFExportError(f"adapter tensor {name}: only LoRA tensors export to PEFT (not heads)")
        module, kind = name.rsplit(".", 1)
        parts = module.split(".")
        if module == "lm_head":
            out[f"base_model.model.lm_head.{kind}.weight"] = t
            continue
        i, leaf = parts[1], parts[-1]
        prefix = f"base_model.model.model.layers.{i}."
        if leaf == "qkv":
            rows = {"q_proj": t[:d], "k_proj": t[d:2 * d], "v_proj": t[2 * d:]} if kind == "lora_B" else \
                {"q_proj": t, "k_proj": t, "v_proj": t}
            out.update({f"{prefix}self_attn.{p}.{kind}.weight": v for p, v in rows.items()})
        elif leaf == "proj":
            out[f"{prefix}self_attn.o_proj.{kind}.weight"] = t
        elif leaf == "up":
            rows = {"gate_proj": t[:h], "up_proj": t[h:]} if kind == "lora_B" else {"gate_proj": t, "up_proj": t}
            out.update({f"{prefix}mlp.{p}.{kind}.weight": v for p, v in rows.items()})
        elif leaf == "down":
            out[f"{prefix}mlp.down_proj.{kind}.weight"] = t
        else:
            raise HFExportError(f"adapter tensor {name}: no PEFT equivalent")
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def export_peft(path: str | Path, out: str | Path, base_model: str | None = None) -> Path:
    """adapter_config.json + adapter_model.safetensors of a LoRA checkpoint, for the HF export of its base
    (`trainer export --format hf --ckpt BASE`); `base_model` is recorded as base_model_name_or_path."""
    from trainer.checkpoint import read_state, resolve_checkpoint

    folder = resolve_checkpoint(path)
    state = read_state(folder)
    lora = state.get("lora")
    if not lora:
        raise HFExportError(f"{folder} holds no LoRA adapters (export it with --format hf)")
    if state.get("method") == "reward":
        raise HFExportError(f"{folder} is a reward model: its head has no PEFT causal-LM equivalent")
    cfg = GPTConfig.from_dict(state["model"])
    tensors = peft_adapter(load_file(str(folder / "adapter.safetensors")), cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    targets = sorted({m for t in lora["targets"] for m in PEFT_TARGETS[t]})
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "r": lora["rank"], "lora_alpha": lora["alpha"], "lora_dropout": lora["dropout"],
        "target_modules": targets, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
        "use_dora": False, "modules_to_save": None, "init_lora_weights": True, "inference_mode": True,
        "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=1))
    return out
