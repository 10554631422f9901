"""Bounded load test of `trainer serve` on 127.0.0.1, against in-process generation as the peers.

Starts the server on a free loopback port, sends N concurrent /v1/completions requests (half of them streamed)
for a fixed time with the official `openai` client, then stops the server. Reports requests/s, generated
tokens/s, p50/p99 latency, mean time to first token (from the server's /metrics) and errors (must be 0).

Peers, on the same model and settings in this process, one request at a time for the same duration: our
`trainer.generate.generate` (the decoding loop without HTTP or scheduling), and `transformers`' `generate` on the
`trainer export --format hf` folder. The ratios say what the server adds (concurrency, HTTP, JSON) or costs.

    python bench/serve_load.py --ckpt RUNS/sft --concurrency 8 --duration 20 --max-tokens 32 [--json out.json]

Only 127.0.0.1 is ever contacted; every loop is bounded by --duration and the process stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = ["First Citizen:", "To be, or not to be", "Give me three tips for", "The king said", "ROMEO:",
           "Once upon a time", "Explain why the sky", "JULIET:\nO Romeo"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def start_server(ckpt: str, port: int, threads: int, max_active: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "serve", "--ckpt", ckpt, "--host", "127.0.0.1",
                             "--port", str(port), "--model-name", "bench", "--threads", str(threads),
                             "--max-active", str(max_active)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


def load(port: int, concurrency: int, duration: float, max_tokens: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
    latencies: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()
    end = time.monotonic() + duration

    def worker(w: int) -> None:
        i = 0
        while time.monotonic() < end:
            prompt, seed, stream = PROMPTS[(w + i) % len(PROMPTS)], w * 100_000 + i, (w + i) % 2 == 1
            t0 = time.perf_counter()
            try:
                if stream:
                    chunks = list(client.completions.create(model="bench", prompt=prompt, max_tokens=max_tokens,
                                                            seed=seed, stream=True,
                                                            stream_options={"include_usage": True}))
                    n = chunks[-1].usage.completion_tokens
                else:
                    n = client.completions.create(model="bench", prompt=prompt, max_tokens=max_tokens,
                                                  seed=seed).usage.completion_tokens
            except Exception as e:  # counted, never fatal: the figure to report is how many
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            finally:
                i += 1
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += n

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": len(errors), "error_examples": errors[:3], "wall_s": wall,
            "req_per_s": len(latencies) / wall, "tokens_per_s": tokens[0] / wall,
            "p50_s": percentile(latencies, 0.5) if latencies else None,
            "p99_s": percentile(latencies, 0.99) if latencies else None}


def ttft_mean(port: int) -> float | None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text):
        for s in family.samples:
            values[s.name] = s.value
    n = values.get("trainer_serve_time_to_first_token_seconds_count", 0)
    return values["trainer_serve_time_to_first_token_seconds_sum"] / n if n else None


def peers(ckpt: str, duration: float, max_tokens: int, threads: int) -> dict:
    """Tokens/s of sequential in-process generation: ours, and transformers' on the HF export."""
    import torch

    from corpus.tokenize.tokenizer import BOS_ID, load_tokenizer
    from trainer.generate import generate
    from trainer.hf import _load_policy, export_hf

    torch.set_num_threads(threads)
    model, folder = _load_policy(ckpt)
    sp = load_tokenizer(folder / "tokenizer.model")
    out = {}

    def run(step) -> float:
        n, i, end, t0 = 0, 0, time.monotonic() + duration, time.perf_counter()
        while time.monotonic() < end:
            n += step(PROMPTS[i % len(PROMPTS)], i)
            i += 1
        return n / (time.perf_counter() - t0)

    def ours(prompt: str, i: int) -> int:
        gen = torch.Generator().manual_seed(i)
        return len(generate(model, [BOS_ID, *sp.encode(prompt)], max_tokens, 1.0, None, None,
                            stop_ids=(sp.eos_id(), BOS_ID), generator=gen, vocab_limit=sp.vocab_size()))

    out["ours_inprocess_tokens_per_s"] = run(ours)
    try:
        import transformers
    except ImportError:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(ckpt, Path(tmp) / "hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(Path(tmp) / "hf", dtype=torch.float32).eval()
    transformers.logging.set_verbosity_error()

    def theirs(prompt: str, i: int) -> int:
        torch.manual_seed(i)
        ids = torch.tensor([[BOS_ID, *sp.encode(prompt)]])
        with torch.no_grad():
            new = hf.generate(ids, max_new_tokens=max_tokens, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                              eos_token_id=[sp.eos_id(), BOS_ID], pad_token_id=sp.pad_id())[0, ids.size(1):]
        return int((~torch.isin(new, torch.tensor([sp.eos_id(), BOS_ID, sp.pad_id()]))).sum())

    out["transformers_inprocess_tokens_per_s"] = run(theirs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint, run folder or export to serve")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load (and of each peer run)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server and of the peers")
    ap.add_argument("--max-active", type=int, default=8, help="the server's --max-active")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not 1 <= args.concurrency <= 256 or not 0 < args.duration <= 600:
        raise SystemExit("--concurrency must be in [1, 256] and --duration in (0, 600] seconds")

    port = free_port()
    server = start_server(args.ckpt, port, args.threads, args.max_active)
    try:
        report = load(port, args.concurrency, args.duration, args.max_tokens)
        report["ttft_mean_s"] = ttft_mean(port)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    report.update({"concurrency": args.concurrency, "duration_s": args.duration, "max_tokens": args.max_tokens,
                   "threads": args.threads})
    if not args.no_peers:
        report.update(peers(args.ckpt, args.duration, args.max_tokens, args.threads))
    print(f"serve: {report['requests']} requests in {report['wall_s']:.1f} s with {args.concurrency} concurrent "
          f"clients: {report['req_per_s']:.2f} req/s, {report['tokens_per_s']:.1f} generated tok/s, "
          f"p50 {report['p50_s']:.3f} s, p99 {report['p99_s']:.3f} s, mean TTFT {report['ttft_mean_s']:.3f} s, "
          f"errors {report['errors']}")
    for key in ("ours_inprocess_tokens_per_s", "transformers_inprocess_tokens_per_s"):
        if key in report:
            print(f"{key.replace('_tokens_per_s', '')} (sequential): {report[key]:.1f} tok/s; "
                  f"server / this = {report['tokens_per_s'] / report[key]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if report["errors"]:
        print(f"errors: {report['error_examples']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
