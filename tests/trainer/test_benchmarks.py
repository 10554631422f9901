"""trainer eval --task / --text: llm-foundry ICL tasks by log-likelihood, bits per byte, parity with lm_eval."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import shared_data

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PIQA, ARC, LAMBADA = (shared_data("eval", f) for f in ("piqa.jsonl", "arc_easy.jsonl", "lambada_openai.jsonl"))


def head(src, dst, n: int):
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))
    return dst


def schema_file(path):
    """A Winogrande-style file: two context options, one continuation."""
    rows = [{"context_options": ["The trophy did not fit in the suitcase because the trophy",
                                 "The trophy did not fit in the suitcase because the suitcase"],
             "continuation": "was too big.", "gold": 0},
            {"context_options": ["Anna thanked Mary because Anna", "Anna thanked Mary because Mary"],
             "continuation": "had helped her.", "gold": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def direct_logprob(model, sp, context: str, continuation: str) -> tuple[float, bool]:
    """One request alone, through the model's plain forward pass: the reference for the batched engine."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = [sp.bos_id(), *sp.encode(context)]
    whole = [sp.bos_id(), *sp.encode(context + continuation)]
    cont = whole[len(ctx):]
    x = torch.tensor([whole[:-1]])
    logits, _ = model(x, torch.tensor([whole[1:]]))
    logp = F.log_softmax(logits[0, -len(cont):], -1)
    target = torch.tensor(cont)
    return logp.gather(1, target[:, None]).sum().item(), bool((logp.argmax(-1) == target).all())


def test_task_kinds_are_read_and_scored_like_one_request_at_a_time(tiny_base, tmp_path):
    from trainer.benchmarks import evaluate_task, load_scoring_model, load_task

    model, sp = load_scoring_model(tiny_base.ckpt)
    for src, kind in ((PIQA, "multiple_choice"), (LAMBADA, "cloze"), (None, "schema")):
        path = schema_file(tmp_path / "wino.jsonl") if src is None else head(src, tmp_path / src.name, 6)
        task = load_task(path)
        assert task.kind == kind and task.name == path.stem
        got = evaluate_task(model, sp, task, batch_size=4)
        ref = [[direct_logprob(model, sp, c, k) for c, k in zip(ex.contexts, ex.continuations)]
               for ex in task.examples]
        n = len(task.examples)
        gold = [r[ex.gold][0] for r, ex in zip(ref, task.examples)]
        assert got["n"] == n and got["logprob_gold"] == pytest.approx(sum(gold) / n, abs=1e-4)
        if kind == "cloze":
            assert got["acc"] == got["acc_norm"] == sum(r[0][1] for r in ref) / n
        else:
            pred = [max(range(len(r)), key=lambda k: r[k][0]) for r in ref]
            norm = [max(range(len(r)), key=lambda k: r[k][0] / ex.norm[k]) for r, ex in zip(ref, task.examples)]
            assert got["acc"] == sum(p == ex.gold for p, ex in zip(pred, task.examples)) / n
            assert got["acc_norm"] == sum(p == ex.gold for p, ex in zip(norm, task.examples)) / n
        assert evaluate_task(model, sp, task, batch_size=3) == pytest.approx(got, abs=1e-5)
        assert evaluate_task(model, sp, task, batch_size=4) == got  # same batches: bit-identical


def test_text_loss_and_bits_per_byte(tiny_base, tmp_path):
    from trainer.benchmarks import evaluate_text, load_scoring_model

    model, sp = load_scoring_model(tiny_base.ckpt)
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question.\n")
    r = evaluate_text(model, sp, short)
    ids = [sp.bos_id(), *sp.encode(short.read_text())]
    _, loss = model(torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]))
    assert r["tokens"] == len(ids) - 1 and r["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert r["bpb"] == pytest.approx(r["loss"] * r["tokens"] / math.log(2) / r["bytes"])
    # a text longer than block_size: every token predicted once, from the window before it
    long = tmp_path / "long.txt"
    long.write_text(shared_data("text", "wikitext-2-raw-test.txt").read_text()[:6000])
    r = evaluate_text(model, sp, long, batch_size=2)
    ids = [sp.bos_id(), *sp.encode(long.read_text())]
    T = model.cfg.block_size
    assert r["tokens"] == len(ids) - 1 > 2 * T
    nll = 0.0
    for s in range(0, len(ids) - 1, T):
        x, y = torch.tensor([ids[s:s + T]]), torch.tensor([ids[s + 1:s + T + 1]])
        x = x[:, :y.size(1)]
        nll += F.cross_entropy(model(x, y)[0][0], y[0], reduction="sum").item()
    assert r["loss"] == pytest.approx(nll / r["tokens"], rel=1e-5)
    assert evaluate_text(model, sp, long, batch_size=2) == r


def test_bad_task_files_get_a_clear_error(tmp_path, tiny_base, capsys):
    from trainer.benchmarks import BenchmarkDataError, load_task
    from trainer.cli import main

    cases = {
        "alpaca.jsonl": ('{"instruction": "Say hi", "output": "hi"}\n', "not an llm-foundry ICL task record"),
        "mixed.jsonl": ('{"context": "a", "continuation": "b"}\n{"query": "q", "choices": ["x", "y"], "gold": 0}\n',
                        "a multiple_choice record in a cloze task file"),
        "gold.jsonl": ('{"query": "q", "choices": ["x", "y"], "gold": 2}\n', "gold 2 is not an index"),
        "text.jsonl": ("just some text\n", "not JSON"),
        "empty.jsonl": ("\n", "no examples"),
    }
    for name, (body, message) in cases.items():
        (tmp_path / name).write_text(body)
        with pytest.raises(BenchmarkDataError, match=message):
            load_task(tmp_path / name)
    with pytest.raises(SystemExit) as e:
        main(["eval", "--ckpt", str(tiny_base.ckpt), "--task", str(tmp_path / "alpaca.jsonl"),
              "--out", str(tmp_path / "r.json")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not an llm-foundry ICL task record" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["eval", "--ckpt", str(tiny_base.ckpt), "--out", str(tmp_path / "r.json")])
    assert e.value.code == 2


def test_cli_eval_on_a_checkpoint_and_its_hf_export_and_with_prompts(tiny_llama, tmp_path, capsys):
    from trainer.cli import main

    main(["export", "--ckpt", str(tiny_llama.ckpt), "--out", str(tmp_path / "hf"), "--format", "hf"])
    piqa, lam = head(PIQA, tmp_path / "piqa.jsonl", 8), head(LAMBADA, tmp_path / "lambada.jsonl", 5)
    wiki = tmp_path / "wikitext-2-raw-test.txt"
    wiki.write_text(shared_data("text", "wikitext-2-raw-test.txt").read_text()[:3000])
    results = {}
    for which in ("ckpt", "hf"):
        src = tiny_llama.ckpt if which == "ckpt" else tmp_path / "hf"
        out = tmp_path / f"{which}.json"
        main(["eval", "--ckpt", str(src), "--task", str(piqa), "--task", str(lam), "--text", str(wiki),
              "--out", str(out)])
        results[which] = json.loads(out.read_text())
    assert "bits per byte" in capsys.readouterr().out
    a, b = results["ckpt"], results["hf"]
    assert set(a["tasks"]) == {"piqa", "lambada"} and set(a["text"]) == {"wikitext-2-raw-test"}
    assert a["tasks"]["piqa"]["n"] == 8 and 0 <= a["tasks"]["piqa"]["acc"] <= 1
    for kind in ("tasks", "text"):
        assert a[kind].keys() == b[kind].keys()
        for name in a[kind]:
            assert a[kind][name] == pytest.approx(b[kind][name], abs=1e-5), name
    assert 0 < a["text"]["wikitext-2-raw-test"]["bpb"] < 10
    # today's reward mode and the benchmarks in one report
    out = tmp_path / "both.json"
    main(["eval", "--ckpt", str(tiny_llama.ckpt), "--prompts", str(shared_data("sft", "alpaca_seed_tasks.jsonl")),
          "--reward-fn", "count_token:,", "--n", "3", "--max-new-tokens", "4", "--task", str(piqa), "--out", str(out)])
    both = json.loads(out.read_text())
    assert both["n"] == 3 and math.isfinite(both["mean_reward"])
    assert both["tasks"]["piqa"] == pytest.approx(a["tasks"]["piqa"], abs=1e-5)


def lm_eval_yaml(path, name: str, data, kind: str) -> None:
    """A local lm_eval task over our JSONL (no download): the same fields, delimiter and metrics."""
    common = (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
              "test_split: test\ntarget_delimiter: \" \"\n")
    if kind == "multiple_choice":
        body = ("output_type: multiple_choice\ndoc_to_text: query\ndoc_to_choice: choices\ndoc_to_target: gold\n"
                "metric_list:\n  - metric: acc\n  - metric: acc_norm\n  - metric: acc_bytes\n")
    else:
        body = ("output_type: loglikelihood\ndoc_to_text: context\ndoc_to_target: continuation\n"
                "metric_list:\n  - metric: acc\n")
    path.write_text(common + body)


@pytest.mark.slow
def test_acc_and_acc_norm_equal_lm_evaluation_harness(tiny_llama, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from trainer.benchmarks import evaluate_task, load_scoring_model, load_task
    from trainer.hf import export_hf

    hf = export_hf(tiny_llama.ckpt, tmp_path / "hf")
    tasks = {"piqa": (head(PIQA, tmp_path / "piqa.jsonl", 40), "multiple_choice"),
             "arc_easy": (head(ARC, tmp_path / "arc_easy.jsonl", 40), "multiple_choice"),
             "lambada_openai": (head(LAMBADA, tmp_path / "lambada_openai.jsonl", 20), "cloze")}
    (tmp_path / "yaml").mkdir()
    for name, (data, kind) in tasks.items():
        lm_eval_yaml(tmp_path / "yaml" / f"{name}.yaml", f"local_{name}", data, kind)
    res = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={hf},dtype=float32,add_bos_token=True", device="cpu", batch_size=8,
        tasks=[f"local_{n}" for n in tasks], task_manager=TaskManager(include_path=str(tmp_path / "yaml")))
    model, sp = load_scoring_model(hf)
    for name, (data, kind) in tasks.items():
        theirs = res["results"][f"local_{name}"]
        ours = evaluate_task(model, sp, load_task(data), batch_size=8)
        assert ours["acc"] == pytest.approx(theirs["acc,none"], abs=1e-9), name
        if kind == "multiple_choice":
            # ours is lm_eval's byte-normalized accuracy; on this ASCII subset also its character-normalized one
            assert ours["acc_norm"] == pytest.approx(theirs["acc_bytes,none"], abs=1e-9), name
            assert ours["acc_norm"] == pytest.approx(theirs["acc_norm,none"], abs=1e-9), name
