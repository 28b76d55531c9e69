"""Bounded load test of `catdog serve` on loopback: requests/s, p50/p99 latency and errors, with dynamic
batching (--max-batch 32) against batching off (--max-batch 1), same model, same photos, same run.

    $ python bench/serve_bench.py --clients 8 32 --duration 30
    $ python bench/serve_bench.py --model runs/lite0-20250101-120000     # a real run folder or export
    $ python bench/serve_bench.py --model null                           # HTTP + decode alone, no model
    $ python bench/serve_bench.py --abuse 2000 --server-nofile 1024      # + 2000 half-sent connections
    $ python bench/serve_bench.py --big-clients 16                       # + 16 clients sending 6000x6000 PNGs

Without --model it builds an EfficientNet-Lite0 classifier from ../shared/weights (ImageNet backbone +
GAP + Dense "logits", untrained head, wrapped like a run folder's calibrated model): the cost per request
is a real model's cost, the labels are meaningless. Each server configuration runs in its own process
(the load generator must not share the server's GIL); the two servers take turns in alternating rounds so
background load on a shared machine hits both alike. Each client POSTs one photo as the raw body, waits
for the answer and sends the next; `--duration` measured seconds per configuration and client count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTOS = SHARED / "data" / "dogs-vs-cats" / "test1"
LITE0 = SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras"


class NullPredictor:
    """Constant answer, no model: measures the serving path alone (HTTP, header check, decode, batching)."""

    classes, resize, name, info = ["cat", "dog"], "squash", "null", {"backbone": "none"}

    def __init__(self, image_size: int):
        self.image_size = (image_size, image_size)

    def predict_images(self, images):
        import numpy as np

        return np.full((len(images), 2), 0.5, np.float32)


def build_predictor(model: str | None, image_size: int):
    """A run folder / export through catdog.predictors.load_predictor, or an untrained-head Lite0 classifier."""
    from catdog.predictors import KerasPredictor, load_predictor

    if model == "null":
        return NullPredictor(image_size)
    if model:
        return load_predictor(model)
    import keras

    from catdog.run import calibrated_model

    keras.utils.set_random_seed(0)
    backbone = keras.saving.load_model(LITE0)
    inputs = keras.Input((image_size, image_size, 3))
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    logits = keras.layers.Dense(1, name="logits")(features)
    probs = keras.layers.Activation("sigmoid", name="probs")(logits)
    classifier = keras.Model(inputs, probs, name="lite0-bench")
    return KerasPredictor(calibrated_model(classifier, 2, 1.0), ["cat", "dog"], (image_size, image_size), "squash",
                          source="", info={"format": "keras", "backbone": "efficientnet_lite0 (untrained head)"})


def run_server(args) -> None:
    import uvicorn

    from catdog.serve import create_app, make_server

    if args.server_nofile:  # a typical `ulimit -n` (1024) makes descriptor exhaustion reachable on loopback
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (args.server_nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    predictor = build_predictor(args.model, args.image_size)
    extra = {"large_pixels": None} if args.plain else {}
    app = create_app(predictor, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, **extra)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    if args.plain:  # uvicorn as catdog used it before issue 13: no read timeouts, no cap, one decode pool
        uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, backlog=256)).run(sockets=[sock])
    else:
        server = make_server(app, log_level="warning", header_timeout=args.header_timeout)
        server.config.access_log, server.config.backlog = False, 256
        server.run(sockets=[sock])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve-only", "--port", str(port), "--max-batch", str(max_batch),
           "--batch-wait-ms", str(args.batch_wait_ms), "--image-size", str(args.image_size),
           "--header-timeout", str(args.header_timeout), "--server-nofile", str(args.server_nofile)]
    if args.model:
        cmd += ["--model", args.model]
    if args.plain:
        cmd += ["--plain"]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).json()["status"] == "ok":
                return proc, url
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not start within 180 s")


async def load(url: str, photos: list[bytes], clients: int, duration: float, warmup: float) -> dict:
    """`clients` closed-loop clients; only requests that start after the warm-up and finish before the end count."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(10**12))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def client() -> None:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                data = photos[next(counter) % len(photos)]
                try:  # a request still unanswered 5 s after the end is an error, not left out
                    r = await asyncio.wait_for(http.post("/predict", content=data,
                                                         headers={"content-type": "image/jpeg"}),
                                               timeout=max(stop_at - t0, 0) + 5)
                    ok = r.status_code == 200 and "label" in r.json()
                    reason = f"HTTP {r.status_code}"
                except asyncio.TimeoutError:
                    ok, reason = False, "no answer"
                except httpx.HTTPError as e:
                    ok, reason = False, type(e).__name__
                t1 = time.perf_counter()
                if ok and t1 > stop_at + 1.0:  # in flight at the end and stalled well past it: not fine
                    ok, reason = False, "answered after the round ended"
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors[reason] = errors.get(reason, 0) + 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return {"latencies": latencies, "seconds": duration, "errors": errors}


def summarize(parts: list[dict]) -> dict:
    latencies = sorted(x for p in parts for x in p["latencies"])
    seconds = sum(p["seconds"] for p in parts)
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"requests": len(latencies), "rps": len(latencies) / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": sum(errors.values()), "error_kinds": errors}


def model_alone(args, photos: list[bytes]) -> dict[int, float]:
    """Images/s of predictor.predict_images alone at batch 1 and --max-batch: the most batching can gain."""
    import numpy as np

    from catdog.serve.images import Decoder

    predictor = build_predictor(args.model, args.image_size)
    decoder = Decoder(predictor.image_size, predictor.resize)
    images = np.stack([decoder(p) for p in photos[: args.max_batch]])
    rates = {}
    for batch in (1, args.max_batch):
        predictor.predict_images(images[:batch])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 5.0:
            predictor.predict_images(images[:batch])
            count += batch
        rates[batch] = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for p in photos[:64]:
        decoder(p)
    rates["decode_ms"] = (time.perf_counter() - start) / min(64, len(photos)) * 1000
    return rates


def batch_histogram(url: str) -> dict[int, int]:
    import httpx

    return {int(k): v for k, v in httpx.get(f"{url}/health", timeout=10).json()["batches"].items()}


def mean_batch(before: dict[int, int], after: dict[int, int]) -> float:
    counts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    batches = sum(counts.values())
    return sum(k * n for k, n in counts.items()) / batches if batches else float("nan")


async def slowloris(port: int, stop_at: float, stats: dict) -> None:
    """One abusive client: sends half a request and waits; when the server closes it, pauses 0.5 s and repeats."""
    while time.perf_counter() < stop_at:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Le")
            await writer.drain()
            stats["opened"] += 1
            answer = await asyncio.wait_for(reader.read(64), timeout=max(stop_at - time.perf_counter(), 0.01))
            stats[answer[:12].decode("latin-1") or "closed"] = stats.get(answer[:12].decode("latin-1") or "closed", 0) + 1
        except asyncio.TimeoutError:
            return
        except OSError as e:
            stats[type(e).__name__] = stats.get(type(e).__name__, 0) + 1
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.5)


async def big_client(url: str, data: bytes, stop_at: float, stats: dict) -> None:
    """A client sending a big-but-legal PNG again and again."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        while time.perf_counter() < stop_at:
            try:
                r = await http.post("/predict", content=data, headers={"content-type": "image/png"})
                key = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                key = type(e).__name__
            stats[key] = stats.get(key, 0) + 1


async def load_beside(url: str, photos: list[bytes], args, abuse: int, big: bytes | None) -> tuple[dict, dict]:
    """Normal closed-loop clients (measured) while `abuse` half-sent connections or big-image clients run."""
    port = int(url.rsplit(":", 1)[1])
    stats: dict = {"opened": 0}
    stop_at = time.perf_counter() + args.warmup + args.duration / args.rounds
    extra = [slowloris(port, stop_at, stats) for _ in range(abuse)]
    extra += [big_client(url, big, stop_at, stats) for _ in range(args.big_clients if big else 0)]
    if extra:  # let the abusers take their connections first (up to 5 s), as they would on a real server
        deadline = time.perf_counter() + 5.0
        await asyncio.sleep(0.2)
        while abuse and time.perf_counter() < deadline and sum(v for k, v in stats.items()) < abuse:
            await asyncio.sleep(0.1)
    normal, *_ = await asyncio.gather(load(url, photos, args.clients[0], args.duration / args.rounds, args.warmup),
                                      *extra)
    return normal, stats


def big_png(side: int) -> bytes:
    """A side x side RGB PNG of a smooth gradient: a legal photo-sized upload (a few MB) that is costly to decode."""
    import io

    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, side, dtype=np.float32)
    pixels = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side))], -1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def abuse_main(args, photos: list[bytes]) -> None:
    """Normal clients' p50 / p99 / errors without and with the abuse, rounds alternating, on one server."""
    big = big_png(args.big_size) if args.big_clients else None
    if big is not None:
        print(f"big image: {args.big_size}x{args.big_size} PNG, {len(big) / 2**20:.1f} MB, "
              f"{args.big_clients} clients sending it in a loop", flush=True)
    label = "plain uvicorn (before issue 13)" if args.plain else f"catdog serve (header timeout {args.header_timeout:g} s)"
    proc, url = start_server(args, args.max_batch)
    parts: dict[str, list] = {"without": [], "with": []}
    abuser: dict[str, int] = {}
    try:
        for _ in range(args.rounds):
            for scenario in ("without", "with"):
                on = scenario == "with"
                normal, stats = asyncio.run(load_beside(url, photos, args, args.abuse if on else 0,
                                                        big if on else None))
                parts[scenario].append(normal)
                if on:
                    for k, v in stats.items():
                        abuser[k] = abuser.get(k, 0) + v
                health = "down"
                import httpx

                try:
                    health = f"{httpx.get(f'{url}/health', timeout=10).status_code}"
                except httpx.HTTPError as e:
                    health = type(e).__name__
                print(f"  round {scenario:7s} abuse: {summarize([normal])['p50_ms']:.0f} / "
                      f"{summarize([normal])['p99_ms']:.0f} ms, errors {summarize([normal])['errors']}, "
                      f"/health after: {health}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    what = (f"{args.abuse} half-sent connections" if args.abuse else "") + \
        (f"{args.big_clients} clients x {args.big_size}x{args.big_size} PNG" if args.big_clients else "")
    print(f"\n{label}, server RLIMIT_NOFILE {args.server_nofile or 'unchanged'}; abuse: {what}")
    print("| normal clients | abuse | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for scenario in ("without", "with"):
        r = summarize(parts[scenario])
        print(f"| {args.clients[0]} | {scenario} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
              f"{r['errors']} {r['error_kinds'] or ''} |")
    print(f"abusers' outcomes: {abuser}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="run folder, SavedModel folder, .tflite or .keras; 'null' = no model "
                        "(the serving path's own ceiling); default: Lite0 + new head")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32], help="concurrent clients per run")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each round")
    parser.add_argument("--rounds", type=int, default=3, help="turns each configuration takes per client count")
    parser.add_argument("--photos", type=int, default=256, help="distinct photos from test1, sent round-robin")
    parser.add_argument("--image-size", type=int, default=224, help="input size of the built-in Lite0 model")
    parser.add_argument("--max-batch", type=int, default=32, help="batched configuration's --max-batch")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--abuse", type=int, default=0, help="abuse mode: this many half-sent connections "
                        "(re-opened when closed) beside the first --clients count of normal clients")
    parser.add_argument("--big-clients", type=int, default=0, help="abuse mode: this many clients sending "
                        "--big-size PNGs beside the normal clients")
    parser.add_argument("--big-size", type=int, default=6000, help="side of the big PNG (6000: 36 MP, under the "
                        "40 MP limit)")
    parser.add_argument("--plain", action="store_true", help="serve with plain uvicorn and one decode pool, as "
                        "before issue 13 (for comparison)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="the server's --header-timeout")
    parser.add_argument("--server-nofile", type=int, default=0, help="the server's RLIMIT_NOFILE (0: unchanged)")
    parser.add_argument("--serve-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_only:
        return run_server(args)

    if not PHOTOS.is_dir():
        raise SystemExit(f"{PHOTOS}: photos not found (this benchmark needs ../shared beside the checkout)")
    names = sorted(PHOTOS.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[: args.photos]
    photos = [p.read_bytes() for p in names]
    print(f"{len(photos)} photos from {PHOTOS} (mean {sum(map(len, photos)) / len(photos) / 1024:.0f} KB); "
          f"model: {args.model or 'Lite0 + untrained head'} at {args.image_size}; "
          f"{args.duration:.0f} s per configuration in {args.rounds} alternating rounds, each after "
          f"{args.warmup:.0f} s warm-up; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    if args.abuse or args.big_clients:
        return abuse_main(args, photos)
    alone = model_alone(args, photos)
    print(f"model alone: {alone[1]:.1f} images/s at batch 1, {alone[args.max_batch]:.1f} at batch {args.max_batch} "
          f"({alone[args.max_batch] / alone[1]:.2f}x, the most batching can gain); "
          f"decode_and_resize {alone['decode_ms']:.1f} ms/photo", flush=True)

    # Both servers run side by side and take turns in short rounds, so a change in background load on a
    # shared machine hits both configurations alike; only one of them receives requests at a time.
    configs = [("batched", args.max_batch), ("batch 1", 1)]
    servers = {}
    try:
        for label, max_batch in configs:
            servers[label] = start_server(args, max_batch)
        results: dict[tuple[str, int], dict] = {}
        for clients in args.clients:
            parts: dict[str, list] = {label: [] for label, _ in configs}
            hist = {label: batch_histogram(url) for label, (_, url) in servers.items()}
            for _ in range(args.rounds):
                for label, _ in configs:
                    url = servers[label][1]
                    parts[label].append(asyncio.run(load(url, photos, clients, args.duration / args.rounds,
                                                         args.warmup)))
            for label, max_batch in configs:
                result = summarize(parts[label])
                result["mean_batch"] = mean_batch(hist[label], batch_histogram(servers[label][1]))
                results[(label, clients)] = result
                print(f"{label:8s} max_batch={max_batch:<3d} clients={clients:<3d} {result['rps']:7.1f} req/s  "
                      f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  mean batch "
                      f"{result['mean_batch']:5.1f}  errors {result['errors']} {result['error_kinds'] or ''}",
                      flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)

    print("\n| clients | batched req/s | batch-1 req/s | gain | batched p50 / p99 ms | batch-1 p50 / p99 ms | "
          "mean batch | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for clients in args.clients:
        b, u = results[("batched", clients)], results[("batch 1", clients)]
        print(f"| {clients} | {b['rps']:.1f} | {u['rps']:.1f} | {b['rps'] / u['rps']:.2f}x | "
              f"{b['p50_ms']:.0f} / {b['p99_ms']:.0f} | {u['p50_ms']:.0f} / {u['p99_ms']:.0f} | "
              f"{b['mean_batch']:.1f} | {b['errors'] + u['errors']} |")
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=2))
    if any(r["errors"] for r in results.values()):
        raise SystemExit("errors during the load test")


if __name__ == "__main__":
    main()
