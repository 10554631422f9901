"""`trainer serve`: an OpenAI-compatible HTTP server (FastAPI on uvicorn) with Prometheus metrics.

    POST /v1/completions         prompt (text, or token ids), max_tokens, temperature, top_p, stop, seed, stream
    POST /v1/chat/completions    messages through the chat template; the same sampling parameters
    GET  /v1/models, /health, /metrics (Prometheus text format)

Scheduling: one engine thread owns the model. Requests wait in a FIFO queue (bounded: a full queue answers 429)
and up to `max_active` of them decode together, one token each per round in turn (round-robin), each with its
own KV cache; so a long generation never blocks a short one behind it, and the event loop only moves bytes.
Our GPT's cache has one length for the whole batch, so rows of different lengths cannot share a forward pass;
round-robin is the fair queue without that.

Errors follow OpenAI's shape ({"error": {"message", "type", "param", "code"}}): unknown model 404, invalid
parameters and over-long prompts 400 (a prompt must leave room for one new token; a longer max_tokens is cut to
the context, finish_reason "length"), queue full 429. A request never takes the server down.

Guards (`Limits`), each a 4xx in that shape, never a hang: with an API key every path but /health (and /metrics
unless `metrics_auth`) needs `Authorization: Bearer KEY` (401), as OpenAI's API and vLLM; a body over `max_body`
bytes 413 (refused from Content-Length before it is read, or while reading a chunked one); a body not received
within `body_timeout` seconds 408 and the connection closed (a client trickling its body holds one coroutine,
never the engine or other requests); `max_tokens` over `max_tokens` 400, `n` other than 1 400; a request not
finished within `deadline` seconds (queueing included) 408, or an error event ending its stream.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from corpus.tokenize.tokenizer import BOS_ID
from trainer.chat import Message, check_chat_tokens, render_prompt
from trainer.generate import filter_logits
from trainer.model import GPT, KVCache


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=self.status, content={"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": self.code}})


@dataclass(frozen=True)
class Limits:
    api_key: str | None = None
    metrics_auth: bool = False  # /metrics behind the key too (it tells request rates and model name)
    max_body: int = 1 << 20  # bytes; a prompt is at most block_size tokens, so 1 MiB is generous
    body_timeout: float = 30.0  # seconds to receive the whole body
    max_tokens: int | None = None  # cap on max_tokens / max_completion_tokens; None = the context
    deadline: float | None = 300.0  # seconds from arrival to the last token

    def __post_init__(self):
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key must not be empty")
        for name in ("max_body", "body_timeout", "max_tokens", "deadline"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")


class Guard:
    """ASGI middleware in front of the app: the API key, the body size and the body's arrival time.

    The body is read here in full (bounded by `max_body`, under one deadline for the whole body, so a trickle of
    one byte a second cannot renew it) and replayed to the app; later receive() calls go to the server, so a
    stream still sees the client's disconnect."""

    def __init__(self, app, limits: Limits, on_refused):
        self.app, self.limits, self.on_refused = app, limits, on_refused
        self.open_paths = {"/health"} | (set() if limits.metrics_auth else {"/metrics"})

    async def refuse(self, scope, send, status: int, message: str, code: str, kind: str = "invalid_request_error",
                     extra: tuple = ()) -> None:
        self.on_refused(scope["path"], status)
        body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
        # Connection: close, since an unread body leaves the connection unusable
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        # compare_digest: the time taken does not tell how much of a guess matched
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                  self.limits.api_key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        lim = self.limits
        headers = dict(scope["headers"])
        if lim.api_key is not None and scope["path"] not in self.open_paths and not self.authorized(headers):
            return await self.refuse(scope, send, 401, "Incorrect or missing API key: send the header "
                                     "'Authorization: Bearer KEY'", "invalid_api_key",
                                     extra=((b"www-authenticate", b"Bearer"),))
        if scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        too_big = f"the request body exceeds this server's limit of {lim.max_body} bytes"
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await self.refuse(scope, send, 400, "Content-Length is not a number", "invalid_request")
        if declared > lim.max_body:
            return await self.refuse(scope, send, 413, too_big, "request_too_large")
        chunks, size, more = [], 0, True
        end = asyncio.get_running_loop().time() + lim.body_timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), end - asyncio.get_running_loop().time())
            except TimeoutError:
                return await self.refuse(scope, send, 408, f"the request body did not arrive within "
                                         f"{lim.body_timeout:g} s", "request_timeout")
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > lim.max_body:
                return await self.refuse(scope, send, 413, too_big, "request_too_large")
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# -- requests ---------------------------------------------------------------------------------------------------
class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields we do not implement (logit_bias, user...) are ignored
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict | None = None
    n: int = Field(1, ge=1, le=1)  # one choice per request
    seed: int | None = None

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise APIError(400, "stop takes at most 4 non-empty strings", "invalid_stop", "stop")
        return stops


class CompletionRequest(Sampling):
    prompt: str | list[str] | list[int]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, "only text content parts are supported", "unsupported_content", "messages")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


# -- the engine -------------------------------------------------------------------------------------------------
@dataclass
class Job:
    prompt: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    stop_ids: tuple[int, ...]
    stop_strings: list[str]
    seed: int | None
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    endpoint: str
    created: float = field(default_factory=time.perf_counter)
    deadline: float | None = None  # perf_counter() time by which the answer must be complete
    cancelled: bool = False
    # engine-side state
    cache: KVCache | None = None
    generator: torch.Generator | None = None
    ids: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the decoded text already emitted
    last: int = 0

    def emit(self, *event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("trainer_serve_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("trainer_serve_prompt_tokens", "prompt tokens processed", registry=r)
        self.generated = Counter("trainer_serve_generated_tokens", "tokens generated", registry=r)
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.ttft = Histogram("trainer_serve_time_to_first_token_seconds", "queueing + prefill + first token",
                              registry=r, buckets=buckets)
        self.latency = Histogram("trainer_serve_request_latency_seconds", "whole request, arrival to last token",
                                 ["endpoint"], registry=r, buckets=buckets)
        self.queue_depth = Gauge("trainer_serve_queue_depth", "requests waiting for a decoding slot", registry=r)
        self.active = Gauge("trainer_serve_active_requests", "requests decoding now", registry=r)


class Engine:
    """Owns the model on one thread; jobs are admitted FIFO and decoded round-robin, a token each per round."""

    def __init__(self, model: GPT, sp, metrics: Metrics, max_active: int = 8, max_queue: int = 256):
        self.model, self.sp, self.metrics = model.eval(), sp, metrics
        self.max_active, self.max_queue = max_active, max_queue
        self.device = next(model.parameters()).device
        self.vocab_limit = min(sp.vocab_size(), model.cfg.vocab_size)
        self.waiting: deque[Job] = deque()
        self.active: list[Job] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="trainer-serve-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        with self.cond:
            if len(self.waiting) >= self.max_queue:  # requests past their deadline give their place back first
                self.waiting = deque(j for j in self.waiting if not j.cancelled)
            if len(self.waiting) >= self.max_queue:
                raise APIError(429, f"the server is busy ({len(self.waiting)} requests queued); retry later",
                               "queue_full", kind="server_busy")
            self.waiting.append(job)
            self.metrics.queue_depth.set(len(self.waiting))
            self.cond.notify()

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not self.active:
                    self.cond.wait()
                if self.stopping:
                    return
                while self.waiting and len(self.active) < self.max_active:
                    self.active.append(self.waiting.popleft())
                self.metrics.queue_depth.set(len(self.waiting))
                self.metrics.active.set(len(self.active))
            for job in list(self.active):
                try:
                    done = job.cancelled or self._step(job)
                except Exception as e:  # a bug must fail this request, not the server
                    job.emit("error", f"generation failed: {type(e).__name__}: {e}")
                    done = True
                if done:
                    self.active.remove(job)
                    job.cache = None  # free its memory now

    def _step(self, job: Job) -> bool:
        """Decode one token of `job`; True when it is finished."""
        if job.cache is None:
            job.cache = KVCache(self.model.cfg, 1, self.device)
            job.generator = torch.Generator(device=self.device)
            job.generator.manual_seed(job.seed if job.seed is not None else torch.seed())
            feed = job.prompt
        else:
            feed = [job.last]
        logits, _ = self.model(torch.tensor([feed], device=self.device), cache=job.cache)
        logits = logits[:, -1]
        logits[:, self.vocab_limit:] = float("-inf")
        if job.temperature == 0:
            token = int(logits.argmax(-1))
        else:
            probs = filter_logits(logits / job.temperature, None, job.top_p).softmax(-1)
            token = int(torch.multinomial(probs, 1, generator=job.generator))
        if not job.ids:
            self.metrics.ttft.observe(time.perf_counter() - job.created)
        if token in job.stop_ids:
            return self._finish(job, "stop", self.sp.decode(job.ids))
        job.ids.append(token)
        job.last = token
        self.metrics.generated.inc()
        full = self.sp.decode(job.ids)
        cut = min((i for i in (full.find(s) for s in job.stop_strings) if i >= 0), default=-1)
        if cut >= 0:  # the earliest stop string ends the text and is not returned
            return self._finish(job, "stop", full[:cut])
        if len(job.ids) >= job.max_tokens or len(job.prompt) + len(job.ids) >= self.model.cfg.block_size:
            return self._finish(job, "length", full)
        # Hold back what may still change: an incomplete UTF-8 sequence (decoded as U+FFFD), or the start of a
        # stop string that the next tokens may complete.
        safe = len(full.rstrip("\ufffd"))
        hold = 0
        for s in job.stop_strings:
            hold = max([hold] + [k for k in range(1, min(len(s), safe + 1)) if full[:safe].endswith(s[:k])])
        safe -= hold
        if safe > job.sent:
            job.emit("text", full[job.sent:safe])
            job.sent = safe
        return False

    def _finish(self, job: Job, reason: str, text: str) -> bool:
        if len(text) > job.sent:
            job.emit("text", text[job.sent:])
        job.emit("done", reason, len(job.prompt), len(job.ids))
        return True


# -- the app ----------------------------------------------------------------------------------------------------
def create_app(model: GPT, sp, model_name: str, max_active: int = 8, max_queue: int = 256,
               limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    metrics = Metrics()
    engine = Engine(model, sp, metrics, max_active, max_queue)
    block = model.cfg.block_size
    try:
        chat_ids = check_chat_tokens(sp)
    except ValueError:
        chat_ids = None

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        engine.start()
        yield
        engine.stop()

    # No /docs or /openapi.json: an OpenAI-compatible API documents itself elsewhere, and nothing opens by accident
    app = FastAPI(title="trainer serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.metrics = engine, metrics
    app.add_middleware(Guard, limits=limits,
                       on_refused=lambda path, status: metrics.requests.labels(path, str(status)).inc())

    @app.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        metrics.requests.labels(request.url.path, str(e.status)).inc()
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        msg = f"invalid request: {loc}: {first.get('msg', 'malformed')}" if loc else \
            f"invalid request: {first.get('msg', 'malformed body')}"
        metrics.requests.labels(request.url.path, "400").inc()
        return APIError(400, msg, "invalid_parameter", loc or None).response()

    def check_model(name: str) -> None:
        if name != model_name:
            raise APIError(404, f"the model {name!r} does not exist; this server serves {model_name!r}",
                           "model_not_found", "model")

    def check_prompt(ids: list[int]) -> None:
        if len(ids) >= block:
            raise APIError(400, f"this model's maximum context length is {block} tokens; the prompt has {len(ids)} "
                           "(it must leave room for at least one new token)", "context_length_exceeded", "prompt")

    def make_job(req: Sampling, prompt: list[int], max_tokens: int | None, stops: tuple[int, ...],
                 endpoint: str) -> Job:
        check_prompt(prompt)
        if max_tokens is not None and limits.max_tokens is not None and max_tokens > limits.max_tokens:
            raise APIError(400, f"max_tokens is {max_tokens}; this server allows at most {limits.max_tokens}",
                           "max_tokens_exceeded", "max_tokens")
        created = time.perf_counter()
        job = Job(prompt=prompt, max_tokens=min(max_tokens or block, limits.max_tokens or block),
                  temperature=req.temperature, top_p=req.top_p,
                  stop_ids=stops, stop_strings=req.stop_strings(), seed=req.seed, loop=asyncio.get_running_loop(),
                  events=asyncio.Queue(), endpoint=endpoint, created=created,
                  deadline=created + limits.deadline if limits.deadline else None)
        metrics.prompt_tokens.inc(len(prompt))
        engine.submit(job)
        return job

    async def events(job: Job):
        while True:
            try:
                timeout = None if job.deadline is None else max(0.0, job.deadline - time.perf_counter())
                event = await asyncio.wait_for(job.events.get(), timeout)
            except TimeoutError:
                job.cancelled = True  # the engine drops it at its next turn, or when it would admit it
                event = ("timeout", f"the request did not finish within this server's deadline of "
                                    f"{limits.deadline:g} s")
            yield event
            if event[0] in ("done", "error", "timeout"):
                return

    async def collect(job: Job) -> tuple[str, str, dict]:
        parts = []
        async for event in events(job):
            if event[0] == "text":
                parts.append(event[1])
            elif event[0] == "error":
                raise APIError(500, event[1], "generation_failed", kind="server_error")
            elif event[0] == "timeout":
                raise APIError(408, event[1], "deadline_exceeded", kind="timeout")
            else:
                _, reason, n_prompt, n_new = event
                return "".join(parts), reason, {"prompt_tokens": n_prompt, "completion_tokens": n_new,
                                                "total_tokens": n_prompt + n_new}
        raise APIError(500, "generation ended early", kind="server_error")

    def sse(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def stream(job: Job, chunk, usage_chunk, endpoint: str, first=None) -> StreamingResponse:
        async def body():
            finished, status = False, "499"
            try:
                if first is not None:
                    yield sse(first)
                async for event in events(job):
                    if event[0] == "text":
                        yield sse(chunk(event[1], None))
                    elif event[0] in ("error", "timeout"):  # the status line is gone: an error event ends it
                        kind, code = ("server_error", "generation_failed") if event[0] == "error" else \
                            ("timeout", "deadline_exceeded")
                        yield sse({"error": {"message": event[1], "type": kind, "param": None, "code": code}})
                        status = "500" if event[0] == "error" else "408"
                        break
                    else:
                        _, reason, n_prompt, n_new = event
                        yield sse(chunk(None, reason))
                        if usage_chunk is not None:
                            yield sse(usage_chunk({"prompt_tokens": n_prompt, "completion_tokens": n_new,
                                                   "total_tokens": n_prompt + n_new}))
                finished, status = True, ("200" if status == "499" else status)
                yield "data: [DONE]\n\n"
            finally:
                if not finished:
                    job.cancelled = True  # the client went away: free the decoding slot
                metrics.requests.labels(endpoint, status).inc()
                metrics.latency.labels(endpoint).observe(time.perf_counter() - job.created)

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "queue_depth": len(engine.waiting),
                "active": len(engine.active)}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0,
                                            "owned_by": "trainer"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        endpoint = "/v1/completions"
        check_model(req.model)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            if len(prompt) != 1:
                raise APIError(400, "one prompt per request (send several requests to batch)", "invalid_prompt",
                               "prompt")
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = [BOS_ID, *sp.encode(prompt)]  # documents start with BOS, so prompts do
        else:
            if not prompt or any(not 0 <= t < model.cfg.vocab_size for t in prompt):
                raise APIError(400, f"token ids must be in [0, {model.cfg.vocab_size})", "invalid_prompt", "prompt")
            ids = list(prompt)
        job = make_job(req, ids, req.max_tokens, (sp.eos_id(), BOS_ID), endpoint)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text, reason):
            return {"id": rid, "object": "text_completion", "created": created, "model": model_name,
                    "choices": [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}]}

        if req.stream:
            usage = None
            if (req.stream_options or {}).get("include_usage"):
                def usage(u):
                    return {**chunk("", None), "choices": [], "usage": u}
            return stream(job, chunk, usage, endpoint)
        text, reason, usage = await collect(job)
        metrics.requests.labels(endpoint, "200").inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - job.created)
        return {**chunk(text, reason), "usage": usage}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        endpoint = "/v1/chat/completions"
        check_model(req.model)
        if chat_ids is None:
            raise APIError(400, "this model's tokenizer has no chat tokens: use /v1/completions", "no_chat_template")
        messages = [Message(m.role, m.text()) for m in req.messages]
        if any(m.role == "system" for m in messages[1:]):
            raise APIError(400, "a system message must come first", "invalid_messages", "messages")
        ids = render_prompt(messages, sp)
        job = make_job(req, ids, req.max_completion_tokens or req.max_tokens,
                       (chat_ids["<|end|>"], sp.eos_id(), BOS_ID), endpoint)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text, reason):
            delta = {} if text is None else {"content": text}
            return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}

        if req.stream:
            first = {**chunk(None, None), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                       "logprobs": None, "finish_reason": None}]}
            usage = None
            if (req.stream_options or {}).get("include_usage"):
                def usage(u):
                    return {**chunk(None, None), "choices": [], "usage": u}
            return stream(job, chunk, usage, endpoint, first)
        text, reason, usage = await collect(job)
        metrics.requests.labels(endpoint, "200").inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - job.created)
        return {"id": rid, "object": "chat.completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": reason}], "usage": usage}

    return app


def serve(ckpt, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None, max_active: int = 8,
          max_queue: int = 256, device: str = "cpu", threads: int | None = None, limits: Limits | None = None) -> None:
    """Load a checkpoint (LoRA merged) and serve it until interrupted."""
    from pathlib import Path

    import uvicorn

    from corpus.tokenize.tokenizer import load_tokenizer
    from trainer.checkpoint import CheckpointError
    from trainer.hf import _load_policy

    if threads:
        torch.set_num_threads(threads)
    model, folder = _load_policy(ckpt)
    if not (folder / "tokenizer.model").exists():
        raise CheckpointError(f"{folder}: tokenizer.model missing (checkpoints and exports carry a copy)")
    sp = load_tokenizer(folder / "tokenizer.model")
    name = model_name or Path(ckpt).resolve().name
    limits = limits or Limits()
    app = create_app(model.to(device), sp, name, max_active, max_queue, limits)
    guarded = "API key required" if limits.api_key else "no API key (open to anyone who can reach it)"
    print(f"serving {name!r} ({model.num_params():,} parameters) on http://{host}:{port}/v1, {guarded}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
