"""Serving speed: `inkwell serve` under 1, 4 and 16 concurrent streaming clients.

    python benchmarks/bench_serve.py [--model smollm2-135m-instruct] [--levels 1,4,16] [--max-tokens 64] [--rounds 3]
                                     [--step-tokens 256] [--no-moderation] [--engine torch|native|auto]

Starts `inkwell serve` on 127.0.0.1 (a free port, its own process so the clients do not share its GIL),
waits for /health, then for each concurrency level C runs C closed-loop clients until max(8, rounds x C)
requests are done (a bounded count). Every request streams a chat completion of exactly --max-tokens
tokens (min_tokens = max_tokens, so every level does the same work per request). Prints p50/p95
time-to-first-token, time per output token, aggregate completion tokens/s and errors per level, and the
throughput ratio of the highest level vs 1. The last line printed is a JSON object of everything.
Target on a CPU with smollm2-135m-instruct: ratio >= 4 and p95 TTFT <= 2 s at 16.

The server runs with its defaults, moderation included: a streamed row's text is released only after a
policy check and never its last 24 characters, so the first *visible* token comes several tokens after the
first generated one. `--no-moderation` measures the scheduler alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_generate import TASKS, TOPICS  # noqa: E402  - the same prompts as the engine benchmark


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def start_server(args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "inkwell",
        "serve",
        "--port",
        str(port),
        "--dtype",
        args.dtype,
        "--batch-size",
        str(args.batch_size),
        "--max-concurrency",
        "256",
        "--no-log",
    ]
    if args.model:
        command += ["--model", args.model]
    if args.step_tokens:
        command += ["--step-tokens", str(args.step_tokens)]
    if args.no_moderation:
        command += ["--no-moderation"]
    if args.engine:
        command += ["--engine", args.engine]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL if not args.verbose else None,
        stderr=subprocess.STDOUT if not args.verbose else None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} (rerun with --verbose)")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not become ready in 10 minutes")


async def one_request(client: httpx.AsyncClient, url: str, model: str, index: int, max_tokens: int) -> dict:
    task = TASKS[index % len(TASKS)].format(TOPICS[(index // len(TASKS) + index) % len(TOPICS)])
    body = {
        "model": model,
        "messages": [{"role": "user", "content": task}],
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "temperature": 0.7,
        "seed": index,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = None
    tokens = 0
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return {"error": f"HTTP {response.status_code}"}
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    return {"error": data["error"].get("code") or "stream error"}
                if data.get("usage"):
                    tokens = data["usage"]["completion_tokens"]
                if any((c.get("delta") or {}).get("content") for c in data.get("choices") or []):
                    now = time.perf_counter()
                    first = first or now
                    last = now
    except httpx.HTTPError as exc:
        return {"error": type(exc).__name__}
    end = time.perf_counter()
    if first is None:
        return {"error": "no tokens"}
    return {
        "ttft": first - started,
        "tpot": (last - first) / (tokens - 1) if tokens > 1 else None,
        "e2e": end - started,
        "tokens": tokens,
    }


async def run_level(url: str, model: str, concurrency: int, total: int, max_tokens: int) -> dict:
    counter = iter(range(total))
    results: list[dict] = []

    async def worker(client):
        for index in counter:
            results.append(await one_request(client, url, model, index, max_tokens))

    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(concurrency)])
        wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    ttft = [r["ttft"] for r in ok]
    tpot = [r["tpot"] for r in ok if r["tpot"] is not None]
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": len(results) - len(ok),
        "wall_s": round(wall, 2),
        "ttft_p50_s": _round(percentile(ttft, 50)),
        "ttft_p95_s": _round(percentile(ttft, 95)),
        "tpot_p50_ms": _round(percentile(tpot, 50), 1000),
        "tpot_p95_ms": _round(percentile(tpot, 95), 1000),
        "e2e_p50_s": _round(percentile([r["e2e"] for r in ok], 50)),
        "tokens_per_s": round(sum(r["tokens"] for r in ok) / wall, 1) if wall else None,
        "error_kinds": sorted({r["error"] for r in results if "error" in r}),
    }


def _round(value: float | None, scale: float = 1.0) -> float | None:
    return None if value is None else round(value * scale, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--levels", default="1,4,16", help="Comma-separated concurrency levels.")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="Requests per level: max(8, rounds x concurrency).")
    parser.add_argument("--batch-size", type=int, default=16, help="The server's --batch-size.")
    parser.add_argument("--step-tokens", type=int, default=None, help="The server's --step-tokens (default: its own).")
    parser.add_argument("--no-moderation", action="store_true", help="Serve without moderation (the scheduler alone).")
    parser.add_argument(
        "--engine", default=None, help="The server's --engine (torch | native | auto; default: its own, torch)."
    )
    parser.add_argument("--verbose", action="store_true", help="Show the server's log.")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    from inkwell.models.cpu import describe

    print(f"cpu: {describe()}", flush=True)
    proc, url = start_server(args)
    try:
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        asyncio.run(run_level(url, model, 2, 2, 8))  # warm-up: first-call allocations, tokenizer caches
        rows = []
        for concurrency in levels:
            row = asyncio.run(run_level(url, model, concurrency, max(8, args.rounds * concurrency), args.max_tokens))
            rows.append(row)
            print(
                f"concurrency {concurrency:>3}: {row['requests']:>3} requests, {row['errors']} errors | "
                f"TTFT p50 {row['ttft_p50_s']} s p95 {row['ttft_p95_s']} s | "
                f"TPOT p50 {row['tpot_p50_ms']} ms p95 {row['tpot_p95_ms']} ms | "
                f"{row['tokens_per_s']} tok/s aggregate",
                flush=True,
            )
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    base = next((r for r in rows if r["concurrency"] == 1), None)
    top = rows[-1]
    ratio = round(top["tokens_per_s"] / base["tokens_per_s"], 2) if base and base["tokens_per_s"] else None
    print(
        f"throughput ratio {top['concurrency']} vs 1: {ratio} (target >= 4); "
        f"p95 TTFT at {top['concurrency']}: {top['ttft_p95_s']} s (target <= 2)"
    )
    print(
        json.dumps(
            {
                "model": model,
                "engine": args.engine or "torch",
                "max_tokens": args.max_tokens,
                "moderation": not args.no_moderation,
                "step_tokens": args.step_tokens,
                "levels": rows,
                f"ratio_{top['concurrency']}_vs_1": ratio,
                "cpu_count": os.cpu_count(),
                "cpu": describe(),
                "median_tokens_per_s": statistics.median([r["tokens_per_s"] or 0 for r in rows]),
            }
        )
    )


if __name__ == "__main__":
    main()
