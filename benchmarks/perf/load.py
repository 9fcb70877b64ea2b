"""HTTP load from a separate process: wrk (+ Lua) if installed, else bounded Python.

Every run is bounded in request count and in time, targets 127.0.0.1 only, and stops by
itself (wrk is ended with SIGINT once each of its threads reports it reached its bound).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "bench.lua"
ALLOWED_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class LoadResult:
    """What one load run measured (latencies in milliseconds)."""

    tool: str
    connections: int
    requests: int
    ok: int
    bad: int
    duration_s: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    bad_statuses: str = ""
    socket_errors: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dict for the JSON results file."""
        return asdict(self)


def wrk_path() -> str | None:
    """The wrk binary, or None (then the Python generator is used)."""
    if os.environ.get("BENCH_NO_WRK"):
        return None
    return shutil.which("wrk")


def _check_local(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host not in ALLOWED_HOSTS:
        raise ValueError(f"benchmarks only send load to 127.0.0.1, not {host!r}")


# --------------------------------------------------------------------------- wrk


def _raise_priority() -> None:
    try:
        os.nice(-5)
    except OSError:
        pass  # not allowed (not root): run at normal priority


def _run_wrk(
    *,
    base_url: str,
    mode: str,
    data_file: Path,
    token: str,
    connections: int,
    max_requests: int,
    max_seconds: float,
    post_path: str = "/",
) -> LoadResult:
    # one wrk thread: see lua/bench.lua (sync workers and stopped threads)
    threads = 1
    marker_dir = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    cmd = [
        wrk_path() or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, int(max_seconds + 0.999))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        mode,
        str(data_file),
        token,
        str(max_requests),
        str(marker_dir),
        post_path,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The client would be another machine in production: on this one it gets
        # priority, so a starved load generator does not hold connections (a sync
        # worker waits for the client to close each one) or under-report the server.
        preexec_fn=_raise_priority,
    )
    try:
        deadline = time.monotonic() + max_seconds + 30
        while proc.poll() is None:
            if len(list(marker_dir.glob("done.*"))) >= threads:
                proc.send_signal(signal.SIGINT)  # all threads reached their bound
                break
            if time.monotonic() > deadline:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(marker_dir, ignore_errors=True)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out[-2000:]} {err[-2000:]}")
    data = json.loads(line[len("BENCH_JSON ") :])
    # the window from the first request sent to the last response counted
    duration = data["window_s"] or data["duration_s"]
    counted = data["ok"] + data["bad"]
    return LoadResult(
        tool="wrk",
        connections=connections,
        requests=counted,
        ok=data["ok"],
        bad=data["bad"],
        duration_s=duration,
        rps=counted / duration if duration else 0.0,
        mean_ms=data["mean_ms"],
        p50_ms=data["p50_ms"],
        p90_ms=data["p90_ms"],
        p99_ms=data["p99_ms"],
        p999_ms=data["p999_ms"],
        max_ms=data["max_ms"],
        bad_statuses=data["bad_statuses"].strip(),
        socket_errors=data["socket_errors"] + data["timeouts"],
    )


# ----------------------------------------------------------------- Python fallback


def _py_worker(args: tuple) -> dict:
    """One client process: `n_threads` connections, bounded by count and time."""
    host, port, token, mode, items, n_threads, max_requests, max_seconds, seed, path = (
        args
    )
    headers = {"Authorization": f"Bearer {token}"}
    if mode == "post":
        headers["Content-Type"] = "application/json"
    lock = threading.Lock()
    latencies: list[float] = []
    state = {"ok": 0, "bad": 0, "bad_statuses": [], "first": None, "last": 0.0}
    deadline = time.monotonic() + max_seconds
    per_thread = (
        [items[i::n_threads] for i in range(n_threads)] if mode == "post" else None
    )

    def loop(tid: int) -> None:
        rng = random.Random(seed * 1000 + tid)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine = per_thread[tid] if per_thread is not None else None
        budget = len(mine) if mine is not None else max_requests // n_threads
        for i in range(budget):
            if time.monotonic() > deadline:
                break
            started = time.monotonic()
            try:
                if mine is not None:
                    conn.request("POST", path, body=mine[i], headers=headers)
                else:
                    conn.request(
                        "GET", items[rng.randrange(len(items))], headers=headers
                    )
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                status = 0
            ended = time.monotonic()
            with lock:
                latencies.append((ended - started) * 1000)
                state["first"] = (
                    started if state["first"] is None else min(state["first"], started)
                )
                state["last"] = max(state["last"], ended)
                if 200 <= status < 300:
                    state["ok"] += 1
                else:
                    state["bad"] += 1
                    if len(state["bad_statuses"]) < 20:
                        state["bad_statuses"].append(status)
        conn.close()

    ts = [threading.Thread(target=loop, args=(t,)) for t in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {**state, "latencies": latencies}


def _run_python(
    *,
    base_url: str,
    mode: str,
    items: list,
    token: str,
    connections: int,
    max_requests: int,
    max_seconds: float,
    post_path: str = "/",
) -> LoadResult:
    parts = urlsplit(base_url)
    n_procs = min(connections, 4)
    per_proc = [
        connections // n_procs + (i < connections % n_procs) for i in range(n_procs)
    ]
    jobs = []
    for p in range(n_procs):
        chunk = items[p::n_procs] if mode == "post" else items
        jobs.append(
            (
                parts.hostname,
                parts.port,
                token,
                mode,
                chunk,
                per_proc[p],
                max_requests // n_procs,
                max_seconds,
                p,
                post_path,
            )
        )
    with mp.get_context("spawn").Pool(n_procs) as pool:
        results = pool.map(_py_worker, jobs)
    lat = np.array([x for r in results for x in r["latencies"]] or [0.0])
    firsts = [r["first"] for r in results if r["first"] is not None]
    duration = (max(r["last"] for r in results) - min(firsts)) if firsts else 0.0
    ok = sum(r["ok"] for r in results)
    bad = sum(r["bad"] for r in results)
    return LoadResult(
        tool="python",
        connections=connections,
        requests=ok + bad,
        ok=ok,
        bad=bad,
        duration_s=duration,
        rps=(ok + bad) / duration if duration else 0.0,
        mean_ms=float(lat.mean()),
        p50_ms=float(np.percentile(lat, 50)),
        p90_ms=float(np.percentile(lat, 90)),
        p99_ms=float(np.percentile(lat, 99)),
        p999_ms=float(np.percentile(lat, 99.9)),
        max_ms=float(lat.max()),
        bad_statuses=" ".join(str(s) for r in results for s in r["bad_statuses"]),
    )


# ---------------------------------------------------------------------- public API


def get_load(
    *,
    base_url: str,
    paths: list[str],
    token: str,
    connections: int = 16,
    seconds: float = 10.0,
    max_requests: int = 1_000_000,
) -> LoadResult:
    """GET random paths from `paths` with `connections` keep-alive connections."""
    _check_local(base_url)
    if wrk_path():
        with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as fh:
            fh.write("\n".join(paths) + "\n")
        try:
            return _run_wrk(
                base_url=base_url,
                mode="get",
                data_file=Path(fh.name),
                token=token,
                connections=connections,
                max_requests=max(1, max_requests),
                max_seconds=seconds,
            )
        finally:
            os.unlink(fh.name)
    return _run_python(
        base_url=base_url,
        mode="get",
        items=paths,
        token=token,
        connections=connections,
        max_requests=max_requests,
        max_seconds=seconds,
    )


def post_bodies(
    *,
    base_url: str,
    path: str,
    bodies: list[bytes],
    token: str,
    clients: int = 4,
    max_seconds: float = 600.0,
) -> LoadResult:
    """POST every body exactly once, spread over `clients` concurrent connections."""
    _check_local(base_url)
    clients = max(1, min(clients, len(bodies)))
    if wrk_path():
        tmp = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
        try:
            with open(tmp / "bodies", "wb") as fh:
                for body in bodies:
                    fh.write(body.replace(b"\n", b" ") + b"\n")
            return _run_wrk(
                base_url=base_url,
                mode="post",
                data_file=tmp / "bodies",
                token=token,
                connections=clients,
                max_requests=len(bodies),
                max_seconds=max_seconds,
                post_path=path,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _run_python(
        base_url=base_url,
        mode="post",
        items=bodies,
        token=token,
        connections=clients,
        max_requests=len(bodies),
        max_seconds=max_seconds,
        post_path=path,
    )
