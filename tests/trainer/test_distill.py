"""Distillation: the loss against its reference definition (value and gradients), and `trainer distill` end to end
on real shards with a real teacher: it learns, resumes bit-exactly, and refuses a teacher of another tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from safetensors.torch import load_file

from corpus.tokenize.tokenizer import train_tokenizer
from trainer.checkpoint import CheckpointError, latest_checkpoint
from trainer.cli import main
from trainer.config import TrainConfigError, load_config
from trainer.data import write_shards_from_texts
from trainer.distill import distill_loss, forward_kl
from trainer.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = REPO / "conf" / "train" / "tiny.yaml"
SMALL = ["model.block_size=32", "train.batch_size=4", "train.eval_batches=2", "train.log_interval=1",
         "train.warmup_steps=2", "train.tensorboard=false"]
STUDENT = SMALL + ["model.d_model=32", "model.n_layer=1", "model.n_head=2"]
TEACHER = SMALL + ["model.d_model=64", "model.n_layer=2"]


def reference_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, alpha: float, T: float):
    """(1 − α)·CE + α·T²·KL as the references define it, written from their documentation, not from ours:
    TRL's GKD at β = 0 is F.kl_div(student log-probs, teacher log-probs, log_target=True) summed over the vocabulary
    and divided by the non-ignored tokens, on logits divided by the temperature; torchtune's ForwardKLLoss is
    −Σ_v p_teacher·log p_student over the same tokens (the KL less the teacher's entropy: equal gradients)."""
    V = student.size(-1)
    s_logp = F.log_softmax(student / T, dim=-1).reshape(-1, V)
    t_logp = F.log_softmax(teacher / T, dim=-1).reshape(-1, V)
    keep = targets.reshape(-1) != -1
    kl_trl = F.kl_div(s_logp[keep], t_logp[keep], reduction="sum", log_target=True) / keep.sum()
    ce_torchtune = -(t_logp[keep].exp() * s_logp[keep]).sum() / keep.sum()
    ce = F.cross_entropy(student.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    return (1 - alpha) * ce + alpha * T ** 2 * kl_trl, (1 - alpha) * ce + alpha * T ** 2 * ce_torchtune, kl_trl


@pytest.mark.parametrize("alpha,T", [(0.5, 1.0), (0.9, 2.0), (1.0, 0.7)])
def test_loss_and_gradients_equal_the_reference_definitions(alpha, T):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(3, 5, 11, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = 3 * torch.randn(3, 5, 11, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 11, (3, 5), generator=g)
    targets[0, :2] = -1  # ignored positions: no KL either
    targets[2, 4] = -1
    ce = F.cross_entropy(student.reshape(-1, 11), targets.reshape(-1), ignore_index=-1)
    loss, kl = distill_loss(student, teacher, targets, ce, alpha, T)
    ref_trl, ref_torchtune, ref_kl = reference_loss(student, teacher, targets, alpha, T)
    torch.testing.assert_close(kl, ref_kl.float(), rtol=1e-6, atol=1e-7)  # our KL is computed in float32
    torch.testing.assert_close(loss.double(), ref_trl, rtol=1e-6, atol=1e-7)
    (grad,) = torch.autograd.grad(loss, student, retain_graph=True)
    (grad_trl,) = torch.autograd.grad(ref_trl, student, retain_graph=True)
    (grad_torchtune,) = torch.autograd.grad(ref_torchtune, student)
    torch.testing.assert_close(grad.double(), grad_trl, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), grad_torchtune, rtol=1e-5, atol=1e-7)
    assert grad[0, :2].abs().max() == 0  # ignored positions get no gradient from either term


def test_kl_is_zero_for_the_teacher_itself_and_grads_check_numerically():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 7, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 7, (2, 4), generator=g)
    assert forward_kl(logits, logits, targets, 1.5).abs() < 1e-6
    # autograd's numerical check of the KL's gradient (float64 through the float32 cast would be too coarse)
    x = logits.clone().requires_grad_(True)
    t = torch.randn(2, 4, 7, generator=g, dtype=torch.float64)
    kl64 = lambda s: (torch.softmax(t / 2, -1) * (torch.log_softmax(t / 2, -1) - torch.log_softmax(s / 2, -1))  # noqa: E731
                      ).sum(-1).mean()
    assert torch.autograd.gradcheck(kl64, (x,))
    (ours,) = torch.autograd.grad(forward_kl(x, t, targets, 2.0), x)
    (theirs,) = torch.autograd.grad(kl64(x), x)
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """Token shards of a small grammar, and a teacher trained on them by us."""
    from test_trainer import synthetic_texts

    root = tmp_path_factory.mktemp("distill")
    texts = synthetic_texts(300)
    (root / "sample.txt").write_text("\n".join(texts))
    model = train_tokenizer(root / "sample.txt", root / "tok", 320)
    write_shards_from_texts(texts, root / "tokens", model, shard_tokens=20_000, val_fraction=0.1)
    pretrain(load_config(TINY, TEACHER + ["train.max_steps=40", "train.eval_interval=40"]), root / "tokens",
             root / "teacher", quiet=True)
    return root / "tokens", root / "teacher"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run) / "model.safetensors")


def test_distill_learns_from_the_teacher_and_resumes_bit_exactly(corpus, tmp_path, capsys):
    tokens, teacher = corpus
    args = ["distill", "--teacher", str(teacher), "--config", str(TINY), "--data", str(tokens)]
    sets = [x for s in STUDENT + ["train.eval_interval=3", "train.ckpt_interval=3", "distill.temperature=2"]
            for x in ("--set", s)]
    main(args + ["--out", str(tmp_path / "a"), "--max-steps", "6"] + sets)
    assert "done: step 6" in capsys.readouterr().out
    main(args + ["--out", str(tmp_path / "b"), "--max-steps", "3"] + sets)
    main(args + ["--out", str(tmp_path / "b"), "--max-steps", "6", "--resume"] + sets)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    train = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["kind"] == "train"]
    for r in train:  # loss = (1 − α)·CE + α·T²·KL with the defaults α 0.5 and the set T 2
        assert r["loss"] == pytest.approx(0.5 * r["ce"] + 0.5 * 4 * r["kl"], rel=1e-5)
    assert train[-1]["kl"] < train[0]["kl"]  # the student moves toward the teacher
    config = json.loads((tmp_path / "a" / "run_config.json").read_text())
    assert config["teacher"]["format"] == "ours" and config["distill"] == {"alpha": 0.5, "temperature": 2.0}

    # resuming a distillation run without its teacher (plain pretraining) is refused
    with pytest.raises(CheckpointError, match="teacher"):
        pretrain(load_config(TINY, STUDENT + ["train.max_steps=9"]), tokens, tmp_path / "a", resume=True,
                 quiet=True)


def test_a_teacher_with_another_tokenizer_is_refused(corpus, tmp_path, capsys):
    tokens, teacher = corpus
    other = tmp_path / "other"
    shutil.copytree(latest_checkpoint(teacher), other)
    (tmp_path / "text.txt").write_text("\n".join(f"line {i} of another corpus, with other words" for i in range(300)))
    tok = train_tokenizer(tmp_path / "text.txt", tmp_path / "tok", 300)
    shutil.copyfile(tok, other / "tokenizer.model")
    with pytest.raises(TrainConfigError, match="--teacher .* tokenizer.model differs"):
        pretrain(load_config(TINY, STUDENT + ["train.max_steps=1"]), tokens, tmp_path / "run", quiet=True,
                 teacher_from=other)
    with pytest.raises(SystemExit) as e:  # the CLI: a one-line error, no traceback
        main(["distill", "--teacher", str(other), "--config", str(TINY), "--data", str(tokens), "--out",
              str(tmp_path / "run2")])
    assert e.value.code == 2 and "tokenizer.model differs" in capsys.readouterr().err
