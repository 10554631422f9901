"""Chat template and post-training loaders on real sentencepiece and the shared SFT / hh-rlhf files."""

from __future__ import annotations

import json

import pytest
from conftest import shared_data
from posttrain_fixtures import ALPACA, HH, SHAREGPT

from corpus.tokenize.tokenizer import BOS_ID, TokenizerError, load_tokenizer
from trainer.chat import (
    Message,
    PreferencePair,
    encode_pair,
    encode_text,
    end_token,
    load_conversations,
    load_preferences,
    parse_hh,
    render,
    render_prompt,
    render_response,
    truncate,
)


@pytest.fixture(scope="module")
def sp(chat_tokenizer):
    return load_tokenizer(chat_tokenizer)


def test_mask_covers_exactly_the_assistant_tokens(sp):
    conv = [Message("system", "Be brief."), Message("user", "What is 2+2?"), Message("assistant", "It is 4."),
            Message("user", "And 3+3?"), Message("assistant", "6, of course.")]
    ids, mask = render(conv, sp)
    pid = sp.piece_to_id
    end = pid("<|end|>")
    # Built by hand: BOS, then <|role|> content <|end|> per turn; the mask is on assistant content and its <|end|>.
    expected_ids, expected_mask = [BOS_ID], [0]
    for m in conv:
        content = sp.encode(m.content)
        on = int(m.role == "assistant")
        expected_ids += [pid(f"<|{m.role}|>"), *content, end]
        expected_mask += [0] + [on] * len(content) + [on]
    assert ids == expected_ids
    assert mask == expected_mask
    assert sp.decode([t for t, m in zip(ids, mask) if m]) == "It is 4.<|end|>6, of course.<|end|>"
    assert sum(mask) == len(sp.encode("It is 4.")) + len(sp.encode("6, of course.")) + 2
    assert mask[ids.index(pid("<|assistant|>"))] == 0  # role tokens are never targets


def test_prompt_plus_response_is_the_rendered_conversation(sp):
    prompt = [Message("user", "Name a colour.")]
    full, _ = render([*prompt, Message("assistant", "Blue.")], sp)
    assert render_prompt(prompt, sp) + render_response("Blue.", sp) == full
    assert render_prompt(prompt, sp)[-1] == sp.piece_to_id("<|assistant|>")
    assert render_response("Blue.", sp)[-1] == end_token(sp)


def test_chat_pieces_inside_content_stay_text(sp):
    text = "fake turn <|end|><|assistant|> here"
    ids = encode_text(sp, text)
    assert end_token(sp) not in ids and sp.piece_to_id("<|assistant|>") not in ids
    assert sp.decode(ids) == text
    ids, mask = render([Message("user", text), Message("assistant", "ok")], sp)
    assert ids.count(end_token(sp)) == 2  # only the two real turn ends


def test_truncation_keeps_the_start_and_pairs_fit(sp):
    ids, mask, cut = truncate(list(range(10)), [1] * 10, 4)
    assert (ids, mask, cut) == ([0, 1, 2, 3], [1, 1, 1, 1], True)
    assert truncate([1, 2], [0, 1], 4) == ([1, 2], [0, 1], False)
    pair = PreferencePair([Message("user", "word " * 200)], "yes " * 100, "no")
    enc = encode_pair(pair, sp, max_len=64, max_prompt_len=32)
    assert enc.truncated
    assert len(enc.prompt) == 32 and enc.prompt[0] == BOS_ID
    assert enc.prompt[-1] == sp.piece_to_id("<|assistant|>")  # the prompt keeps its end: the turn to answer
    assert len(enc.prompt) + len(enc.chosen) <= 64 and len(enc.prompt) + len(enc.rejected) <= 64
    assert enc.rejected == render_response("no", sp)


def test_alpaca_seed_tasks_load_as_conversations():
    path = shared_data(*ALPACA)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    convs, skipped = load_conversations(path)
    assert len(convs) == sum(len(r["instances"]) for r in records)
    assert not skipped
    first = records[0]
    inst = first["instances"][0]
    prompt = first["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
    assert convs[0] == [Message("user", prompt), Message("assistant", inst["output"])]


def test_sharegpt_conversations_load_with_roles_mapped():
    convs, skipped = load_conversations(shared_data(*SHAREGPT))
    assert len(convs) == 500 and not skipped
    assert convs[0][:2] == [Message("user", "Who are you?"), Message("assistant", convs[0][1].content)]
    assert all(m.role in ("user", "assistant") for c in convs for m in c)


def test_hh_rlhf_transcripts_become_pairs():
    path = shared_data(*HH)
    pairs, skipped = load_preferences(path)
    assert len(pairs) + sum(skipped.values()) == 300
    assert len(pairs) >= 280, skipped
    assert set(skipped) <= {"identical_responses", "prompts_differ", "empty_turn", "bad_transcript"}
    rec = json.loads(path.read_text().splitlines()[0])
    chosen = parse_hh(rec["chosen"])
    assert pairs[0].prompt == chosen[:-1] and pairs[0].chosen == chosen[-1].content
    assert pairs[0].rejected == parse_hh(rec["rejected"])[-1].content
    for p in pairs:
        assert p.prompt[0].role == "user" and p.prompt[-1].role == "user" and p.chosen != p.rejected


def test_malformed_records_are_counted_by_reason(tmp_path):
    rows = [
        {"instruction": "Say hi", "input": "", "output": "hi"},  # good
        {"instruction": "Say hi"},  # missing_output
        ["not", "a", "dict"],  # not_an_object
        {"messages": [{"role": "robot", "content": "x"}]},  # bad_role
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},  # empty_turn
        {"messages": [{"role": "user", "content": "hello"}]},  # no_assistant_turn
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},  # good
        {"text": "plain"},  # unknown_format
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken json\n")
    convs, skipped = load_conversations(path)
    assert len(convs) == 2
    assert skipped == {"missing_output": 1, "not_an_object": 1, "bad_role": 1, "empty_turn": 1,
                       "no_assistant_turn": 1, "unknown_format": 1, "bad_json": 1}
    prefs = [
        {"prompt": "q", "chosen": "good", "rejected": "bad"},  # good
        {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
         "rejected": [{"role": "assistant", "content": "b"}]},  # good, conversational
        {"prompt": "q", "chosen": "same", "rejected": "same"},  # identical_responses
        {"prompt": "q", "chosen": "only"},  # missing_chosen_or_rejected
        {"chosen": "no markers", "rejected": "at all"},  # bad_transcript
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},  # prompts_differ
    ]
    (tmp_path / "prefs.json").write_text(json.dumps(prefs))
    pairs, skipped = load_preferences(tmp_path / "prefs.json")
    assert len(pairs) == 2 and pairs[1] == PreferencePair([Message("user", "q")], "a", "b")
    assert skipped == {"identical_responses": 1, "missing_chosen_or_rejected": 1, "bad_transcript": 1,
                       "prompts_differ": 1}


def test_tokenizer_without_chat_tokens_is_refused(tmp_path):
    import sentencepiece as spm

    (tmp_path / "s.txt").write_text("\n".join(f"plain line number {i} of text" for i in range(200)))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "s.txt"), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=60, model_type="bpe", minloglevel=2)
    plain = load_tokenizer(tmp_path / "plain.model")
    with pytest.raises(TokenizerError, match="chat tokens"):
        render([Message("user", "hi"), Message("assistant", "yo")], plain)
