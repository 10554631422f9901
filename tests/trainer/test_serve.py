"""`trainer serve` as a real uvicorn process on 127.0.0.1, driven by the official openai client; `trainer chat`
and `generate --chat` through their command lines."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
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
KEY = "sk-test-7f3a"
BODY_LIMIT, BODY_TIMEOUT, TOKENS_LIMIT = 65536, 2.0, 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_base):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRAINER_API_KEY": KEY}  # the key from the environment
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "serve", "--ckpt", str(tiny_base.ckpt), "--host",
                             "127.0.0.1", "--port", str(port), "--model-name", NAME, "--threads", "1",
                             "--max-active", "4", "--max-body-bytes", str(BODY_LIMIT), "--body-timeout",
                             str(BODY_TIMEOUT), "--max-tokens-limit", str(TOKENS_LIMIT)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)


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


AUTH = {"authorization": f"Bearer {KEY}"}


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
    r = httpx.post(f"{server}/v1/completions", content=b"{not json", headers={"content-type": "application/json",
                                                                               "authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{server}/v1/completions", json={"model": NAME, "prompt": [99999]}, headers=AUTH)
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


# -- the guards: API key, body size, slow bodies, max_tokens (the module's server); deadline and queue (below) ----
def raw_http(server: str, head: str, body: bytes = b"", timeout: float = 30) -> tuple[int, dict]:
    """Send a request byte for byte on a socket (what httpx would refuse to send) and read the status and body."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        return read_response(s)


def read_response(s: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := s.recv(65536):  # the server closes the connection after these refusals
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_the_api_key_is_required_except_for_health_and_metrics(server, client):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key") as e:
        bad.completions.create(model=NAME, prompt="hi", max_tokens=2)
    assert e.value.body["code"] == "invalid_api_key" and e.value.body["type"] == "invalid_request_error"
    for headers in ({}, {"authorization": KEY}, {"authorization": f"Basic {KEY}"},
                    {"authorization": "Bearer sk-other"}):
        r = httpx.get(f"{server}/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{server}/v1/models", headers=AUTH).json()["data"][0]["id"] == NAME
    assert httpx.get(f"{server}/health").status_code == 200 and httpx.get(f"{server}/metrics").status_code == 200
    assert httpx.get(f"{server}/docs").status_code == 401  # every other path is behind the key too
    assert client.models.list().data[0].id == NAME


def test_max_tokens_and_n_over_the_caps_are_refused(client):
    with pytest.raises(openai.BadRequestError, match=f"at most {TOKENS_LIMIT}"):
        client.completions.create(model=NAME, prompt="hi", max_tokens=TOKENS_LIMIT + 1)
    with pytest.raises(openai.BadRequestError, match=f"at most {TOKENS_LIMIT}"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}],
                                       max_completion_tokens=TOKENS_LIMIT + 1)
    with pytest.raises(openai.BadRequestError, match="n"):
        client.completions.create(model=NAME, prompt="hi", max_tokens=2, n=3)
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], temperature=0)
    assert r.usage.completion_tokens <= TOKENS_LIMIT  # no max_tokens: the cap, not the context, bounds it


def test_huge_bodies_are_refused_before_or_while_they_are_read(server, client):
    head = f"POST /v1/completions HTTP/1.1\nHost: x\nAuthorization: Bearer {KEY}\nContent-Type: application/json\n"
    status, body = raw_http(server, head + "Content-Length: 1000000000\n", b'{"model": "tiny", "prompt": "')
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert str(BODY_LIMIT) in body["error"]["message"]
    chunk = b"a" * 20000  # chunked: no length up front, so the server counts as it reads
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    status, body = raw_http(server, head + "Transfer-Encoding: chunked\n", chunked)
    assert status == 413
    with pytest.raises(openai.APIStatusError) as e:  # through the client too: a 100k-character prompt
        client.completions.create(model=NAME, prompt="word " * 20000, max_tokens=2)
    assert e.value.status_code == 413
    status, body = raw_http(server, head + "Content-Length: 9\n", b'{"model":')
    assert status == 400 and body["error"]["type"] == "invalid_request_error"  # truncated JSON


def test_a_slow_client_gets_408_and_holds_nothing_meanwhile(server, client):
    host, port = server.removeprefix("http://").split(":")
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as stalled, \
            socket.create_connection((host, int(port)), timeout=30) as trickler:
        start = time.monotonic()
        stalled.sendall(head + b'{"model": "tiny", ')  # headers and the start of the body, then silence
        trickler.sendall(head)

        def trickle():  # a byte every 0.2 s: each arrives in time, the whole body never does
            try:
                for _ in range(int(3 * BODY_TIMEOUT / 0.2)):
                    trickler.sendall(b" ")
                    time.sleep(0.2)
            except OSError:  # the server closed the connection: what it should do
                pass

        with ThreadPoolExecutor(1) as pool:
            pool.submit(trickle)
            # other requests are served while both bodies are pending
            assert client.completions.create(model=NAME, prompt="meanwhile", max_tokens=3).usage.total_tokens > 0
            assert time.monotonic() - start < BODY_TIMEOUT
            status, body = read_response(stalled)
            assert status == 408 and body["error"]["code"] == "request_timeout"
            try:  # the server answers 408 and closes; closing on unread trickled bytes may reset the connection first
                status, body = read_response(trickler)
                assert status == 408 and body["error"]["code"] == "request_timeout"
            except ConnectionResetError:
                pass
            assert time.monotonic() - start < 3 * BODY_TIMEOUT


def test_a_blank_api_key_is_refused_at_start(tiny_base):
    r = run_cli("serve", "--ckpt", str(tiny_base.ckpt), "--api-key", " ", "--port", "0")
    assert r.returncode == 2 and "API key must not be empty" in r.stderr + r.stdout


# -- the deadline and the queue: an in-process server with a slow model (8 layers, 4096 positions, random) -------
@pytest.fixture(scope="module")
def slow_server(tiny_base):
    import uvicorn

    from corpus.tokenize.tokenizer import load_tokenizer
    from trainer.model import GPT, GPTConfig
    from trainer.serve import Limits, create_app

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=1024, block_size=4096, n_layer=8, n_head=4, d_model=128))
    app = create_app(model, load_tokenizer(tiny_base.tokenizer), NAME, max_active=1, max_queue=1,
                     limits=Limits(deadline=1.0, api_key=KEY, metrics_auth=True))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)


def test_the_deadline_ends_a_long_request_and_a_full_queue_answers_429(slow_server):
    client = openai.OpenAI(base_url=f"{slow_server}/v1", api_key=KEY, max_retries=0, timeout=60)
    long = {"model": NAME, "prompt": [1, 5, 6], "max_tokens": 4000, "temperature": 0}
    with ThreadPoolExecutor(2) as pool:
        start = time.monotonic()
        first = pool.submit(client.completions.create, **long)  # decoding: 4000 tokens take ~10 s here
        time.sleep(0.3)
        second = pool.submit(client.completions.create, **long)  # waits: one decoding slot
        time.sleep(0.3)
        with pytest.raises(openai.RateLimitError, match="busy"):  # one waiting place, taken
            client.completions.create(model=NAME, prompt="x", max_tokens=1)
        for f in (first, second):
            with pytest.raises(openai.APIStatusError, match="deadline") as e:
                f.result()
            assert e.value.status_code == 408 and e.value.body["code"] == "deadline_exceeded"
        assert time.monotonic() - start < 5
    with pytest.raises(openai.APIError, match="deadline"):  # streamed: an error event ends the stream
        list(client.completions.create(stream=True, **long))
    assert client.completions.create(model=NAME, prompt="x", max_tokens=2, temperature=0).usage.completion_tokens
    assert httpx.get(f"{slow_server}/metrics").status_code == 401  # --metrics-auth
    text = httpx.get(f"{slow_server}/metrics", headers=AUTH).text
    assert 'trainer_serve_requests_total{endpoint="/v1/completions",status="408"} 3.0' in text
    assert 'trainer_serve_requests_total{endpoint="/v1/completions",status="429"} 1.0' in text
