"""trainer ablate: conf/ablate/blogs-tiny.yaml end to end (2 arms × 3 seeds on a slice of the blog pool), its
resumption, and the inputs it must refuse with a clear error."""

from __future__ import annotations

import json
import math

import pytest
from conftest import REPO, shared_data

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = REPO / "conf" / "ablate" / "blogs-tiny.yaml"


def tiny_config(path, replace: dict[str, str] | None = None):
    """blogs-tiny.yaml elsewhere, its shared-data paths made absolute, with some text replaced."""
    text = TINY.read_text()
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text.replace("../shared/data", str(shared_data())))
    return path


@pytest.fixture(scope="module")
def ablation(spark, tmp_path_factory):
    from trainer.ablate import run_ablation

    out = tmp_path_factory.mktemp("ablate") / "tiny"
    lines: list[str] = []
    results = run_ablation(TINY, out, spark=spark, log=lines.append)
    return out, results, lines


@pytest.mark.slow
def test_tiny_ablation_end_to_end(ablation):
    out, results, _ = ablation
    written = json.loads((out / "results.json").read_text())
    assert written["final"] == results["final"] and written["pairs"] == results["pairs"]
    arms = results["arms"]
    assert list(arms) == ["raw", "filtered+dedup"]
    budget = results["budget_tokens"]
    assert budget == results["steps"] * results["tokens_per_step"] <= 40960
    for name, a in arms.items():
        assert sorted(a["seeds"]) == ["1", "2", "3"]
        for records in a["seeds"].values():
            # the same budget for every arm and seed, evaluated at several points, the last at the end
            assert [r["tokens"] for r in records][-1] == budget and len(records) >= 2
            assert [r["tokens"] for r in records] == sorted(r["tokens"] for r in records)
            final = records[-1]
            assert set(final["tasks"]) == {"piqa", "lambada_openai"} and final["tasks"]["piqa"]["n"] == 40
            assert 0 < final["text"]["wikitext-2-raw-test"]["bpb"] < 20
        assert a["epochs"] == pytest.approx(budget / a["train_tokens"])
        tokens = json.loads((out / "arms" / name / "run" / "tokens" / "manifest.json").read_text())
        assert tokens["tokenizer"]["sha256"] == arms["raw"]["tokenizer_sha256"] == a["tokenizer_sha256"]
    # the filters and dedup removed documents: fewer training tokens than the raw arm
    assert arms["filtered+dedup"]["train_tokens"] < arms["raw"]["train_tokens"]
    stages = results["funnels_data"]
    assert any(s["step"] == "dedup" for s in stages["filtered+dedup"]) and not any(
        s["step"] == "dedup" for s in stages["raw"])
    # seeds differ, and the final table is their mean ± sd
    bpb = results["final"]["raw"]["wikitext-2-raw-test/bpb"]
    values = [recs[-1]["metrics"]["wikitext-2-raw-test/bpb"] for recs in arms["raw"]["seeds"].values()]
    assert bpb["values"] == values and len(set(values)) == 3
    assert bpb["mean"] == pytest.approx(sum(values) / 3)
    assert bpb["sd"] == pytest.approx(math.sqrt(sum((v - bpb["mean"]) ** 2 for v in values) / 2))
    pair = next(p for p in results["pairs"] if p["metric"] == "wikitext-2-raw-test/bpb")
    other = results["final"]["filtered+dedup"]["wikitext-2-raw-test/bpb"]
    assert pair["noise"] == pytest.approx(2 * math.sqrt((bpb["sd"] ** 2 + other["sd"] ** 2) / 2))
    assert pair["beyond_noise"] == (abs(bpb["mean"] - other["mean"]) > pair["noise"])
    html = (out / "report.html").read_text()
    for section in ('id="curves"', 'id="final"', 'id="pairs"', 'id="funnels"', "data:image/png;base64,"):
        assert section in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


@pytest.mark.slow
def test_a_rerun_skips_finished_runs_and_trainings(ablation, spark):
    from trainer.ablate import run_ablation

    out, results, _ = ablation
    ckpts = sorted(out.glob("arms/*/seed*/ckpt/*/model.safetensors"))
    evals = sorted(out.glob("arms/*/seed*/eval/*.json"))
    before = {p: p.stat().st_mtime_ns for p in [*ckpts, *evals]}
    lines: list[str] = []
    again = run_ablation(TINY, out, spark=spark, log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert not any("training" in line for line in lines)
    assert sum("current (marker), skipped" in line for line in lines) == 5  # build+tokenize, build+dedup+tokenize
    assert again["final"] == results["final"]
    # a training interrupted after its first checkpoint resumes from it and ends where it would have
    seed = out / "arms" / "raw" / "seed1"
    last = sorted((seed / "ckpt").iterdir())[-1]
    import shutil

    shutil.rmtree(last)
    for e in (seed / "eval").glob("*.json"):
        e.unlink()
    lines.clear()
    resumed = run_ablation(TINY, out, spark=spark, log=lines.append)
    assert any("resuming at step" in line for line in lines)
    assert resumed["arms"]["raw"]["seeds"]["1"] == results["arms"]["raw"]["seeds"]["1"]


@pytest.mark.slow
def test_refused_budget_and_empty_arm(ablation, spark, tmp_path):
    from trainer.ablate import AblationError, run_ablation

    out, _, _ = ablation
    with pytest.raises(AblationError, match="exceeds the training tokens of arm.*allow_repeat is false"):
        run_ablation(TINY, out, ["train.tokens=50000000", "train.allow_repeat=false"], spark=spark, log=print)
    empty = tiny_config(tmp_path / "empty.yaml", {
        "max_documents: 1500": "max_documents: 200",
        "  - name: filtered+dedup": "  - name: nothing\n    steps: [build, tokenize]\n"
                                    "    set: [quality.gopher_quality.min_doc_words=100000]\n"
                                    "  - name: filtered+dedup"})
    with pytest.raises(AblationError, match="arm nothing: its build step kept no documents"):
        run_ablation(empty, tmp_path / "out", spark=spark, log=print)


def test_bad_configs_are_refused_before_any_work(tmp_path, capsys):
    from trainer.ablate import AblationError, run_ablation
    from trainer.cli import main

    bad_task = tmp_path / "alpaca.jsonl"
    bad_task.write_text('{"instruction": "hi", "output": "hello"}\n')
    tiny_config(tmp_path / "a.yaml", {"../shared/data/eval/piqa.jsonl": str(bad_task)})
    with pytest.raises(SystemExit) as e:
        main(["ablate", "--config", str(tmp_path / "a.yaml"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not an llm-foundry ICL task record" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "tokenizer.model").exists()
    tiny_config(tmp_path / "b.yaml", {"steps: [build, dedup, tokenize]": "steps: [dedup, build, tokenize]"})
    with pytest.raises(AblationError, match="steps must start with build"):
        run_ablation(tmp_path / "b.yaml", tmp_path / "o")
    with pytest.raises(AblationError, match="invalid ablation configuration"):
        run_ablation(TINY, tmp_path / "o", ["train.seedz=[1]"])
