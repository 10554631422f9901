"""`trainer serve` as a real uvicorn process on 127.0.0.1, driven by the official openai client; `trainer chat`
and `generate --chat` through their command lines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from conftest import REPO
from prometheus_client.parser import text_string_to_metric_families

from corpus.tokenize.tokenizer import BOS_ID
from trainer.chat import Message
from trainer.chat_session import chat_reply, load_chat_model
from trainer.generate import generate

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

NAME = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_base):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "serve", "--ckpt", str(tiny_base.ckpt), "--host",
                             "127.0.0.1", "--port", str(port), "--model-name", NAME, "--threads", "1",
                             "--max-active", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the server did not start: {proc.stdout.read()}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def local(tiny_base):
    return load_chat_model(tiny_base.ckpt)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sampled_completion(local, prompt: str, n: int, seed: int) -> str:
    """What the server must answer at temperature 1 with this seed: the tiny model's greedy text is all
    newlines, so sampling (seeded, reproducible) is what tells answers apart."""
    model, sp = local
    new = generate(model, [BOS_ID, *sp.encode(prompt)], n, temperature=1.0, stop_ids=(sp.eos_id(), BOS_ID),
                   generator=seeded(seed), vocab_limit=sp.vocab_size())
    return sp.decode(new)


def test_completions_equal_our_decoding_streamed_or_not(client, local):
    prompt = "First Citizen:\nBefore we proceed any further"
    expected = sampled_completion(local, prompt, 24, seed=1)
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=1, seed=1)
    assert r.choices[0].text == expected and len(expected.split()) > 3
    n = r.usage.completion_tokens
    assert local[1].decode(local[1].encode(expected)) == expected and 0 < n <= 24
    assert r.choices[0].finish_reason == ("length" if n == 24 else "stop")
    greedy = client.completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=0).choices[0].text
    model, sp = local
    assert greedy == sp.decode(generate(model, [BOS_ID, *sp.encode(prompt)], 24, temperature=0.0,
                                        stop_ids=(sp.eos_id(), BOS_ID), vocab_limit=sp.vocab_size()))
    chunks = list(client.completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=1, seed=1,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason and len(chunks) > 3


def test_chat_completions_apply_the_template(client, local):
    model, sp = local
    messages = [Message("system", "You answer briefly."), Message("user", "Name a colour.")]
    expected = chat_reply(model, sp, messages, max_new_tokens=30, temperature=1.0, top_k=None, generator=seeded(2))
    as_dicts = [{"role": m.role, "content": m.content} for m in messages]
    r = client.chat.completions.create(model=NAME, messages=as_dicts, max_tokens=30, temperature=1, seed=2)
    assert r.choices[0].message.content == expected and r.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model=NAME, messages=as_dicts, max_tokens=30, temperature=1, seed=2,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_stop_strings_cut_the_text_streamed_or_not(client, local):
    prompt = "KING RICHARD:"
    full = sampled_completion(local, prompt, 30, seed=3)
    words = re.findall(r"[A-Za-z]{3,}", full[3:])
    assert words, full
    stop = words[0][:3]  # may also occur earlier, inside full[:3]: find() below takes the first
    expected = full[:full.find(stop)]
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=30, seed=3, stop=[stop, "\x00zz"])
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model=NAME, prompt=prompt, max_tokens=30, seed=3, stop=stop,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == expected


def test_sampling_is_reproducible_with_a_seed_and_top_p_changes_it(client):
    kw = {"model": NAME, "prompt": "To be", "max_tokens": 20, "temperature": 1.0, "seed": 7}
    a = client.completions.create(top_p=0.9, **kw).choices[0].text
    assert a == client.completions.create(top_p=0.9, **kw).choices[0].text
    others = {client.completions.create(**{**kw, "seed": s}).choices[0].text for s in range(8, 12)}
    assert len(others | {a}) > 1


def test_concurrent_requests_each_get_their_own_answer(client, local):
    prompts = [f"{w} said:" for w in ("ROMEO", "JULIET", "HAMLET", "LEAR", "BRUTUS", "PORTIA", "IAGO", "PUCK")]
    expected = [sampled_completion(local, p, 16, seed=i) for i, p in enumerate(prompts)]

    def ask(i: int) -> str:
        if i % 2:
            stream = client.completions.create(model=NAME, prompt=prompts[i], max_tokens=16, seed=i, stream=True)
            return "".join(c.choices[0].text for c in stream)
        return client.completions.create(model=NAME, prompt=prompts[i], max_tokens=16, seed=i).choices[0].text

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(ask, range(8))) == expected
    assert len(set(expected)) == len(expected)


def test_bad_requests_get_clear_4xx_and_the_server_keeps_serving(client, server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="hi", max_tokens=2)
    for bad in ({"temperature": 5}, {"top_p": 0}, {"max_tokens": 0}, {"n": 2}, {"stop": ["a", "b", "c", "d", "e"]}):
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=NAME, prompt="hi", **{"max_tokens": 2, **bad})
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.completions.create(model=NAME, prompt="word " * 2000, max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "word " * 2000}])
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model=NAME, messages=[{"role": "robot", "content": "hi"}])
    r = httpx.post(f"{server}/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{server}/v1/completions", json={"model": NAME, "prompt": [99999]})
    assert r.status_code == 400 and "token ids" in r.json()["error"]["message"]
    assert client.completions.create(model=NAME, prompt="still", max_tokens=3).usage.completion_tokens >= 1
    assert httpx.get(f"{server}/health").json()["status"] == "ok"


def test_metrics_count_requests_tokens_and_latency(client, server):
    client.completions.create(model=NAME, prompt="count me", max_tokens=5, temperature=0)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    text = httpx.get(f"{server}/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    ok = samples[("trainer_serve_requests_total", (("endpoint", "/v1/completions"), ("status", "200")))]
    assert ok >= 1
    assert samples[("trainer_serve_requests_total", (("endpoint", "/v1/completions"), ("status", "404")))] >= 1
    assert samples[("trainer_serve_generated_tokens_total", ())] >= 5
    assert samples[("trainer_serve_time_to_first_token_seconds_count", ())] >= ok
    assert samples[("trainer_serve_request_latency_seconds_count", (("endpoint", "/v1/completions"),))] >= ok
    assert ("trainer_serve_queue_depth", ()) in samples and ("trainer_serve_active_requests", ()) in samples


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, timeout=300)


def test_chat_loop_reads_turns_from_stdin_and_generate_chat_replies(tiny_base, local):
    model, sp = local
    common = ["--ckpt", str(tiny_base.ckpt), "--temperature", "1", "--max-new-tokens", "12", "--seed", "5"]
    r = run_cli("chat", *common, stdin="Hello there.\nAnd then?\n/reset\nHello there.\n/exit\nnever read\n")
    assert r.returncode == 0, r.stderr
    gen = seeded(5)  # one generator for the whole session, as the loop has
    first = chat_reply(model, sp, [Message("user", "Hello there.")], 12, 1.0, generator=gen)  # --temperature 1
    second = chat_reply(model, sp, [Message("user", "Hello there."), Message("assistant", first),
                                    Message("user", "And then?")], 12, 1.0, generator=gen)
    third = chat_reply(model, sp, [Message("user", "Hello there.")], 12, 1.0, generator=gen)  # after /reset
    assert first  # a tiny model may end a later reply at once (an empty reply is a valid sample)
    assert r.stdout == f"assistant> {first}\nassistant> {second}\n(conversation reset)\nassistant> {third}\n"
    r = run_cli("generate", "--chat", "--prompt", "Hello there.", *common)
    assert r.returncode == 0 and r.stdout == first + "\n"
