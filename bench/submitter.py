"""Submitter throughput: how busy does the pump keep Symbl's concurrent-job limit?

A backlog of merged meetings meets a Symbl account limited to LIMIT concurrent jobs (the fake,
job durations drawn from a fixed-seed U(0.5, 2.0) s times SCALE: "seconds, scaled"). The schemes
run one after the other against the same fake, the same durations and the same backlog:

- ours: `run_pump` (DynamoDB slots) in warm workers, woken by the job callback through the real
  webhook app (`/symbl/callback/<secret>` → `settle_job` → nudge), plus the reconciler on a
  schedule (every second here). Workers are processes by default (concurrent Lambda
  invocations: each nudge is one datagram to the next worker); `--pump-threads` adds threads
  in this process, woken by the rig's `WakeNudger`.
- naive: N consumer threads long-polling the submit queue and an in-process counter of jobs in
  flight (reserved before submitting, released by a tiny callback receiver); when the counter is
  at the limit the consumer hides the message again with ChangeMessageVisibility and moves on.

Scenarios are LIMIT:BACKLOG:SCALE. A real Symbl job for a meeting of an hour runs for minutes;
the bench compresses jobs to U(0.5, 2) x SCALE seconds while every call around them keeps its
real local cost (moto, loopback HTTP), so the fixed costs of a refill (~0.1 s) and of filling 50
free slots (~2.5 s: moto serves one DynamoDB request at a time, ~10 ms each for our items) weigh
SCALE-times more than they would at real durations. The targets are judged at SCALE 16 (jobs of
8-32 s, a compression of roughly 10-20x): 50:300:16 (the brief's limit and backlog) and 2:12:16
(the trial limit; 300 meetings at 2 slots would take 40 minutes). 50:300:4 is the stress case
(jobs of 2-8 s): there moto's DynamoDB is busy ~70 % of the time and becomes the bottleneck of
both schemes. `--quick` (50:120:8, 2:8:2) is a smoke run; its verdicts mean little.

The bench exits 1 when one of our scheme's targets is missed: utilisation and refill latency at
SCALE 16 or more, no exceedance and nothing lost or doubled at every scale. The naive scheme's
verdicts are shown for comparison and judge nothing.

Everything is measured from the fake's own job histories (accept → terminal, monotonic clock):

- utilisation while a backlog exists: ∫ jobs in flight dt ÷ (LIMIT * T), T from the first
  accepted submit to the last (after it no message is left to submit); also from the moment
  the limit was first reached (without the initial ramp);
- refill latency: for each job that ended while the backlog lasted, its end → the next accepted
  submit; stricter, the FIFO slot-idle time (k-th end → (LIMIT+k)-th accept); and the split at
  the moment the slot was released (DynamoDB for ours, the counter for naive);
- 429s, max in flight (the fake refuses beyond LIMIT with a 429, so an attempted exceedance
  shows up as a 429), meetings lost (not TRANSCRIBED: naive dead-letters some) and doubled
  (two accepted submissions of one meeting).

The profile times every call the pumps and the callback make (through proxies), the callback
POST round trip, and nudge → pump running, and counts calls per job.

Machine, not design: the fake runs ffprobe on every submit and two ffmpeg processes per job
(~0.2 CPU-s a job, which alone would cap this 2-core machine at a few jobs a second), so the
bench memoises them (same bytes, same answer; `--real-analysis` keeps them). moto runs in its
own process (`--moto inproc` puts it back in this one: ~12 points less utilisation from the
GIL); pump workers are warmed up before the clock starts.

    .venv/bin/python bench/submitter.py [--quick] [--schemes ours,naive]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._targets import Target, report, verdict  # noqa: E402

os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR")

SEED = 20260101
JOB_SECONDS = (0.5, 2.0)
JUDGED_SCALE = 16.0  # utilisation and refill targets are claimed for jobs of 8-32 s and longer
TERMINAL = ("completed", "failed")


# ---------------------------------------------------------------------------------------------
# Timing: a proxy that times every method call of a collaborator
# ---------------------------------------------------------------------------------------------


class Timings:
    """Durations per operation name, and when each job's slot was released (callback side)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.released: dict[str, float] = {}
        self.wakes: list[float] = []  # nudge → pump running again
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.samples[name].append(seconds)

    def merge(self, other: dict[str, Any]) -> None:
        with self._lock:
            for name, values in other.get("samples", {}).items():
                self.samples[name].extend(values)
            self.wakes.extend(other.get("wakes", []))

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {"samples": dict(self.samples), "wakes": list(self.wakes)}


class Timed:
    """Forwards to `target`, timing each method call as `<prefix>.<method>`."""

    def __init__(self, target: Any, prefix: str, timings: Timings) -> None:
        self._target = target
        self._prefix = prefix
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        label = f"{self._prefix}.{name}"
        timings = self._timings

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.monotonic()
            try:
                return attr(*args, **kwargs)
            finally:
                t1 = time.monotonic()
                timings.add(label, t1 - t0)
                if name == "release_job" and args:
                    timings.released.setdefault(str(args[0]), t1)

        return call


def timed_wsgi(app: Any, timings: Timings, label: str) -> Any:
    def wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        t0 = time.monotonic()
        try:
            return list(app(environ, start_response))
        finally:
            timings.add(label, time.monotonic() - t0)

    return wrapper


def warm_up(deps: Any) -> None:
    """First calls of a fresh worker (botocore models, connections, Symbl token, secrets), made
    before the clock starts: the bench measures warm pumps, as Lambda keeps recent ones."""
    queue_url = deps.settings.submit_queue_url
    calls: list[Callable[[], Any]] = [
        lambda: deps.slots.view(),
        lambda: deps.store.get("warm-up"),
        lambda: deps.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]),
        lambda: deps.s3.generate_presigned_url(
            "get_object", Params={"Bucket": deps.settings.media_bucket, "Key": "warm-up"}
        ),
        lambda: deps.speech.job_status("warm-up"),
    ]
    for call in calls:
        with contextlib.suppress(Exception):
            call()


def timed_pump_deps(deps: Any, timings: Timings) -> Any:
    deps.slots = Timed(deps.slots, "slots", timings)
    deps.store = Timed(deps.store, "store", timings)
    deps.speech = Timed(deps.speech, "symbl", timings)
    deps.sqs = Timed(deps.sqs, "sqs", timings)
    deps.s3 = Timed(deps.s3, "s3", timings)
    return deps


# ---------------------------------------------------------------------------------------------
# The fake's analysis, memoised (same bytes, same answer) so ffmpeg does not own the CPU
# ---------------------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()


def memoise_fake_analysis() -> None:
    """Patch the fake (in this process only): ffprobe and silencedetect run once per content."""
    import sandbox.fake_symbl as fake
    import sandbox.fake_symbl.jobs as fake_jobs  # the submit route probes with this name

    if getattr(fake, "_bench_memoised", False):
        return
    probe = fake.probe_audio
    probes: dict[str, Any] = {}
    detect = fake.FakeSymblState._detect_speech
    detections: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()

    def probe_once(path: Path) -> Any:
        key = _digest(path)
        with lock:
            if key in probes:
                return probes[key]
        info = probe(path)
        with lock:
            probes[key] = info
        return info

    def detect_once(self: Any, audio: Path, info: Any, plan: Any) -> Any:
        key = (_digest(audio), info, plan.per_channel, self.silence_threshold_db)
        with lock:
            if key in detections:
                return detections[key]
        found = detect(self, audio, info, plan)
        with lock:
            detections[key] = found
        return found

    fake_jobs.probe_audio = probe_once  # type: ignore[assignment]
    fake.FakeSymblState._detect_speech = detect_once  # type: ignore[method-assign]
    fake._bench_memoised = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Child processes: moto's server, and pump workers (concurrent Lambda invocations)
# ---------------------------------------------------------------------------------------------


class MotoLoad:
    """Time moto spends on each operation (inside DynamoDB's lock: its own work, not waiting).
    `GET /_bench/moto-load` returns the totals since the last such request and resets them."""

    PATH = "/_bench/moto-load"

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.lock = threading.Lock()

    def timed(self, app: Any) -> Any:
        def call(environ: dict[str, Any], start_response: Any) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            name = target.replace("DynamoDB_20120810.", "dynamodb.").replace("AmazonSQS.", "sqs.")
            t0 = time.monotonic()
            try:
                return list(app(environ, start_response))
            finally:
                with self.lock:
                    entry = self.totals[name or f"s3.{environ.get('REQUEST_METHOD', '')}"]
                    entry[0] += 1
                    entry[1] += time.monotonic() - t0

        return call

    def endpoint(self, app: Any) -> Any:
        def call(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") != self.PATH:
                return app(environ, start_response)
            with self.lock:
                body = json.dumps(self.totals).encode()
                self.totals.clear()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]

        return call


def moto_load(url: str | None) -> dict[str, list[float]]:
    if not url:
        return {}
    import requests

    try:
        return dict(requests.get(url + MotoLoad.PATH, timeout=10).json())
    except (requests.RequestException, ValueError):
        return {}


def serve_moto() -> int:
    """Child: moto's (DynamoDB-serialised) server on loopback until stdin closes."""
    import logging

    from sandbox.http_server import LoopbackServer
    from sandbox.local_aws import serialized_moto_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    load = MotoLoad()
    server = LoopbackServer(load.endpoint(serialized_moto_app(wrap=load.timed))).start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()
    return 0


def pump_worker(stats_file: str) -> int:
    """Child: a warm pump Lambda container. Each datagram is an async invoke (a nudge); b"stop"
    ends it. Between invocations it runs nothing, as Lambda; the schedule nudges it too."""
    from services.core.settings import SubmitterSettings, load_settings
    from services.submitter.handler import build_pump_deps
    from services.submitter.pump import run_pump

    timings = Timings()
    deps = build_pump_deps(load_settings(SubmitterSettings))
    warm_up(deps)
    deps = timed_pump_deps(deps, timings)
    deps.jobs.pump = NullNudger()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    submitted = 0
    errors: list[str] = []
    stopping = False
    while not stopping:
        data = sock.recv(64)
        sent_at = _drain(sock, data)
        if sent_at is None:
            break
        timings.wakes.append(time.monotonic() - sent_at)
        while True:
            try:
                report = run_pump(deps)
            except Exception as e:  # noqa: BLE001 - reported to the parent
                errors.append(f"{type(e).__name__}: {e}")
                break
            submitted += len(report.submitted)
            if not report.submitted:
                break
            ready, _, _ = select.select([sock], [], [], 0)
            if ready and _drain(sock, sock.recv(64)) is None:
                stopping = True
                break
    Path(stats_file).write_text(
        json.dumps({"submitted": submitted, "errors": errors, **timings.dump()})
    )
    return 0


def _drain(sock: socket.socket, first: bytes) -> float | None:
    """Read every queued datagram; None when one says stop, else the oldest nudge's time."""
    messages = [first]
    while select.select([sock], [], [], 0)[0]:
        messages.append(sock.recv(64))
    if any(m == b"stop" for m in messages):
        return None
    return min(float(m) for m in messages)


class NullNudger:
    def nudge(self, reason: str) -> None:
        return


MOTO_LOG = Path(tempfile.gettempdir()) / "bench-submitter-moto.log"


def moto_errors() -> int:
    """Internal errors moto's server logged so far (tracebacks: its own races, not ours)."""
    try:
        return MOTO_LOG.read_text(errors="replace").count("Traceback")
    except OSError:
        return 0


@contextlib.contextmanager
def moto_process() -> Iterator[tuple[str, int]]:
    log = MOTO_LOG.open("w")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-moto"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("moto's server did not start")
        yield url, proc.pid
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---------------------------------------------------------------------------------------------
# The rig: the stack, the fake and the webhook app, as tests/support/submitter_rig.py, with a
# timed callback path and a nudger that also wakes pump processes
# ---------------------------------------------------------------------------------------------


class BenchNudger:
    """The rig's WakeNudger for pump threads, plus one datagram per nudge to the next pump
    process (one async invoke → one invocation)."""

    def __init__(self) -> None:
        from tests.support.submitter_rig import WakeNudger

        self.wake = WakeNudger()
        self.ports: list[int] = []
        self.last_nudge = 0.0
        self._next = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    @property
    def event(self) -> threading.Event:
        return self.wake.event

    @property
    def count(self) -> int:
        return self.wake.count

    def nudge(self, reason: str) -> None:
        now = time.monotonic()
        self.last_nudge = now
        self.wake.nudge(reason)
        with self._lock:
            if not self.ports:
                return
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
        self._sock.sendto(repr(now).encode(), ("127.0.0.1", port))

    def broadcast(self, payload: bytes) -> None:
        for port in self.ports:
            self._sock.sendto(payload, ("127.0.0.1", port))


@dataclass
class Run:
    """One scheme's run: what the fake saw, plus the scheme's own counters."""

    scheme: str
    limit: int
    uuids: list[str]
    jobs: list[tuple[str, str, float, float | None]]  # (job id, name, accepted, terminal)
    rejections_429: int
    max_in_flight: int
    states: dict[str, str]
    wall_seconds: float
    timings: Timings
    webhook_lags: list[float]  # terminal status → callback POST answered
    extra: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    moto: dict[str, list[float]] = field(default_factory=dict)  # operation → [count, busy s]


@contextlib.contextmanager
def bench_rig(stack: Any, credentials: Any, cfg: Config) -> Iterator[tuple[Any, Timings]]:
    from sandbox.fake_symbl import FakeSymblState, seeded_uniform, serve
    from sandbox.http_server import LoopbackServer
    from services.core.settings import WebhookSettings, settings_from
    from services.webhook.app import build_deps, create_app
    from tests.support.submitter_rig import SubmitterRig

    state = FakeSymblState(
        app_id=credentials.symbl_app_id,
        app_secret=credentials.symbl_app_secret,
        concurrency_limit=cfg.limit,
        queue_seconds=0.0,
        processing_seconds=seeded_uniform(*cfg.job_seconds, cfg.seed),
        webhook_workers=cfg.webhook_workers,
        seed=cfg.seed,
    )
    symbl_server = serve(state)
    env = {**stack.service_environment(), "SYMBL_API_BASE_URL": symbl_server.url}
    deps = build_deps(settings_from(WebhookSettings, env))
    timings = Timings()
    nudger = BenchNudger()
    assert deps.jobs is not None
    deps.jobs.pump = nudger
    with contextlib.suppress(Exception):
        deps.jobs.speech.job_status("warm-up")  # token and secret, before the clock starts
    deps.jobs.store = Timed(deps.jobs.store, "cb.store", timings)
    deps.jobs.slots = Timed(deps.jobs.slots, "cb.slots", timings)
    deps.jobs.speech = Timed(deps.jobs.speech, "cb.symbl", timings)
    deps.jobs.notify_queue = Timed(deps.jobs.notify_queue, "cb.sqs", timings)
    app = create_app(deps)
    api = LoopbackServer(timed_wsgi(app, timings, "cb.request")).start()
    rig = SubmitterRig(stack, credentials, state, symbl_server.url, api.url, cfg.limit, nudger)  # type: ignore[arg-type]
    try:
        yield rig, timings
    finally:
        api.stop()
        symbl_server.stop()
        state.close()


CHANNEL_MAP = [
    {
        "channel": 1,
        "speakers": [{"file_id": "a", "name": "Ana Ruiz-Soto", "email": "ana@example.com"}],
    },
    {"channel": 2, "speakers": [{"file_id": "b", "name": "Bo", "email": None}]},
]


def add_backlog(rig: Any, count: int, flac: Path, prefix: str = "m") -> list[str]:
    """`count` meetings in MERGED, each with a submit request queued (as the rig's
    `add_merged_meetings`, but two DynamoDB writes a meeting and one shared file in S3)."""
    from services.core import aws
    from services.core.queues import SubmitRequest
    from services.core.recordings import Recording, State

    bucket = rig.stack.names.media_bucket
    key = f"merged/{prefix}.flac"
    aws.client("s3").upload_file(str(flac), bucket, key)
    store = rig.store
    sqs = aws.client("sqs")
    uuids = [f"{prefix}/{i}+==" for i in range(count)]
    for i, uuid in enumerate(uuids):
        store.create_if_absent(
            Recording(
                meeting_uuid=uuid,
                meeting_id=str(i),
                topic=f"Meeting {prefix}-{i}",
                start_time="2026-01-01T00:00:00.000Z",
                host_email="host@example.com",
            )
        )
        store.transition(
            uuid,
            State.RECEIVED,
            State.MERGED,
            updates={"merged_key": key, "merged_seconds": 4.0, "channel_map": CHANNEL_MAP},
        )
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=rig.stack.queue_urls["submit"],
            Entries=[
                {"Id": str(n), "MessageBody": SubmitRequest(meeting_uuid=uuid).model_dump_json()}
                for n, uuid in enumerate(uuids[start : start + 10])
            ],
        )
    return uuids


def final_states(rig: Any, uuids: list[str]) -> dict[str, str]:
    """Every meeting's state from one scan (not one read per meeting)."""
    found = {r.meeting_uuid: r.state.value for r in rig.store.scan()}
    return {u: found.get(u, "MISSING") for u in uuids}


def fake_jobs(state: Any) -> list[tuple[str, str, float, float | None]]:
    jobs = []
    for submission in state.submissions:
        record = state.job(submission.job_id)
        accepted = record.history[0][1]
        ends = [t for status, t in record.history if status in TERMINAL]
        jobs.append((submission.job_id, submission.name, accepted, ends[0] if ends else None))
    return jobs


def webhook_lags(state: Any) -> list[float]:
    return [
        a.attempted_at - a.status_changed_at
        for a in state.webhook_attempts
        if a.payload.get("status") in TERMINAL and not a.dropped
    ]


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


class Stall:
    """No new submit for `seconds` while nothing is in flight: the scheme is stuck."""

    def __init__(self, state: Any, seconds: float = 30.0) -> None:
        self.state = state
        self.seconds = seconds
        self.count = -1
        self.since = time.monotonic()

    def stalled(self) -> bool:
        count = self.state.accepted
        if count != self.count or self.state.in_flight:
            self.count = count
            self.since = time.monotonic()
        return time.monotonic() - self.since > self.seconds


class CpuMeter:
    """CPU seconds used by this process and the given children over the measured run."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.start = {name: self._cpu(p) for name, p in self.procs.items()}
        self.t0 = time.monotonic()

    @staticmethod
    def _cpu(proc: Any) -> float:
        try:
            times = proc.cpu_times()
            return float(times.user + times.system)
        except Exception:  # noqa: BLE001 - a child that already exited
            return 0.0

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        used = {n: self._cpu(p) - self.start[n] for n, p in self.procs.items()}
        return {**{f"cpu {n} (cores)": v / elapsed for n, v in used.items()}}


# ---------------------------------------------------------------------------------------------
# Scheme 1: ours
# ---------------------------------------------------------------------------------------------


@dataclass
class Config:
    backlog: int
    limit: int
    pump_threads: int
    pump_procs: int
    naive_consumers: int
    naive_defer: int
    reconcile_every: float
    webhook_workers: int
    timeout: float
    scale: float = 1.0
    seed: int = SEED
    moto_url: str | None = None  # moto in its own process: its load is read per run

    @property
    def job_seconds(self) -> tuple[float, float]:
        return (JOB_SECONDS[0] * self.scale, JOB_SECONDS[1] * self.scale)


def run_ours(stack: Any, credentials: Any, flac: Path, cfg: Config, moto_pid: int | None) -> Run:
    from services.submitter.pump import run_pump
    from services.submitter.reconciler import reconcile

    with bench_rig(stack, credentials, cfg) as (rig, timings):
        uuids = add_backlog(rig, cfg.backlog, flac)
        nudger: BenchNudger = rig.nudger  # type: ignore[assignment]
        stop = threading.Event()
        errors: list[str] = []
        tmp = Path(tempfile.mkdtemp(prefix="bench-pump-"))
        env = {
            **os.environ,
            **rig.environment(),
            "PYTHONPATH": str(ROOT),
        }
        children = []
        for i in range(cfg.pump_procs):
            child = subprocess.Popen(
                [sys.executable, __file__, "--pump-worker", str(tmp / f"pump-{i}.json")],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            nudger.ports.append(int(child.stdout.readline()))
            children.append(child)

        ready = threading.Semaphore(0)
        go = threading.Event()

        def pump_thread() -> None:
            deps = rig.pump_deps()
            warm_up(deps)
            deps = timed_pump_deps(deps, timings)
            deps.jobs.pump = NullNudger()
            ready.release()
            go.wait()
            while not stop.is_set():
                try:
                    report = run_pump(deps)
                except Exception as e:  # noqa: BLE001 - reported
                    errors.append(f"pump thread: {type(e).__name__}: {e}")
                    return
                if not report.submitted:
                    # Idle until a callback frees a slot (the nudge) or briefly, as in the rig.
                    if nudger.event.wait(0.2):
                        timings.wakes.append(time.monotonic() - nudger.last_nudge)
                    nudger.event.clear()

        def reconciler() -> None:
            go.wait()
            deps = rig.reconciler_deps()
            deps.jobs.store = Timed(deps.jobs.store, "rec.store", timings)
            deps.jobs.pump = nudger
            while not stop.wait(cfg.reconcile_every):
                t0 = time.monotonic()
                report = reconcile(deps)
                timings.add("rec.pass", time.monotonic() - t0)
                if report.errors:
                    errors.extend(report.errors)
                if report.repairs:
                    timings.add("rec.repairs", float(len(report.repairs)))

        threads = [
            threading.Thread(target=pump_thread, daemon=True) for _ in range(cfg.pump_threads)
        ]
        threads.append(threading.Thread(target=reconciler, daemon=True))
        pids = {"main": os.getpid(), **{f"pump{i}": c.pid for i, c in enumerate(children)}}
        if moto_pid:
            pids["moto"] = moto_pid
        for thread in threads:
            thread.start()
        for _ in range(cfg.pump_threads):
            ready.acquire(timeout=60)
        cpu = CpuMeter(pids)
        moto_load(cfg.moto_url)  # resets moto's counters: the setup above is not measured
        moto_before = moto_errors()
        t0 = time.monotonic()
        nudger.broadcast(repr(t0).encode())  # the first invocation of every pump process
        go.set()
        state = rig.symbl

        progress = Stall(state)

        def all_submitted_and_idle() -> bool:
            names = {s.name for s in state.submissions}
            done = len(names) >= cfg.backlog and state.in_flight == 0
            return done or progress.stalled()

        wait_for(all_submitted_and_idle, cfg.timeout)
        if progress.stalled():
            errors.append("stalled: no submit for 30 s with nothing in flight")

        def all_transcribed() -> bool:
            return all(s == "TRANSCRIBED" for s in final_states(rig, uuids).values())

        wait_for(all_transcribed, 15, poll=1.0)
        wall = time.monotonic() - t0
        cpu_used = cpu.stop()
        load = moto_load(cfg.moto_url)
        stop.set()
        nudger.event.set()
        nudger.broadcast(b"stop")
        for thread in threads:
            thread.join(timeout=30)
        for i, child in enumerate(children):
            child.wait(timeout=60)
            stats = tmp / f"pump-{i}.json"
            if stats.exists():
                data = json.loads(stats.read_text())
                timings.merge(data)
                errors.extend(f"pump process: {e}" for e in data["errors"])
            else:
                errors.append(f"pump process {i} exited {child.returncode} without stats")
        shutil.rmtree(tmp, ignore_errors=True)
        states = final_states(rig, uuids)
        in_use = rig.slots.view().in_use
        return Run(
            scheme="ours",
            limit=cfg.limit,
            uuids=uuids,
            jobs=fake_jobs(state),
            rejections_429=sum(1 for r in state.rejections if r.status == 429),
            max_in_flight=state.max_in_flight,
            states=states,
            wall_seconds=wall,
            timings=timings,
            webhook_lags=webhook_lags(state),
            extra={
                "nudges": float(nudger.count),
                "slots held at end": float(in_use),
                "terminal callbacks answered 404": float(
                    sum(
                        1
                        for a in state.webhook_attempts
                        if a.status_code == 404 and a.payload.get("status") in TERMINAL
                    )
                ),
                "moto internal errors": float(moto_errors() - moto_before),
                "in_progress callbacks answered 404": float(
                    sum(
                        1
                        for a in state.webhook_attempts
                        if a.status_code == 404 and a.payload.get("status") not in TERMINAL
                    )
                ),
            },
            errors=errors,
            cpu=cpu_used,
            moto=load,
        )


# ---------------------------------------------------------------------------------------------
# Scheme 2: naive (counter + ChangeMessageVisibility)
# ---------------------------------------------------------------------------------------------


class Naive:
    """N consumers long-poll the submit queue; an in-process counter of jobs in flight, reserved
    before submitting and released by the callback; at the limit the message is hidden again."""

    def __init__(self, rig: Any, uuids: list[str], cfg: Config, timings: Timings) -> None:
        from flask import Flask, jsonify, request

        from sandbox.http_server import LoopbackServer
        from services.core import aws
        from services.core.speech.symbl import SymblClient, SymblCredentials

        self.rig = rig
        self.cfg = cfg
        self.timings = timings
        self.uuids = uuids
        self.index = {u: i for i, u in enumerate(uuids)}
        self.queue_url = rig.stack.queue_urls["submit"]
        creds = SymblCredentials(rig.credentials.symbl_app_id, rig.credentials.symbl_app_secret)
        speech = SymblClient(rig.symbl_url, lambda: creds)
        with contextlib.suppress(Exception):
            speech.job_status("warm-up")  # the token, before the clock starts
        self.sqs = Timed(aws.client("sqs"), "naive.sqs", timings)
        self.s3 = aws.client("s3")
        self.store = Timed(rig.store, "naive.store", timings)
        self.speech = Timed(speech, "naive.symbl", timings)
        self.in_flight = 0
        self.settled: set[str] = set()
        self.done: set[str] = set()
        self.deferrals = 0
        self.receives = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

        app = Flask("naive-callback")

        @app.post("/naive/<int:index>")
        def callback(index: int) -> Any:
            data = request.get_json(silent=True) or {}
            job_id = data.get("jobId") or data.get("id")
            status = data.get("status")
            if status not in TERMINAL or not job_id:
                return jsonify(status="ignored")
            with self._lock:
                if job_id in self.settled:
                    return jsonify(status="duplicate")
                self.settled.add(job_id)
                self.in_flight -= 1
                timings.released.setdefault(job_id, time.monotonic())
            self._finish(self.uuids[index], job_id, status)
            return jsonify(status="ok")

        self.server = LoopbackServer(timed_wsgi(app, timings, "naive.cb.request")).start()

    def _finish(self, uuid: str, job_id: str, status: str) -> None:
        from services.core.errors import StateConflict
        from services.core.recordings import State

        new = State.TRANSCRIBED if status == "completed" else State.FAILED
        try:
            self.store.transition(uuid, (State.MERGED, State.SUBMITTED), new)
        except StateConflict:
            return
        with self._lock:
            self.done.add(uuid)

    def _reserve(self) -> bool:
        with self._lock:
            if self.in_flight >= self.cfg.limit:
                return False
            self.in_flight += 1
            return True

    def _unreserve(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _defer(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.deferrals += 1
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=self.cfg.naive_defer,
        )

    def consume(self) -> None:
        while not self.stop.is_set():
            try:
                got = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=1,
                    AttributeNames=["ApproximateReceiveCount"],
                ).get("Messages", [])
                for message in got:
                    with self._lock:
                        self.receives += 1
                    self._handle(message)
            except Exception as e:  # noqa: BLE001 - reported
                self.errors.append(f"naive consumer: {type(e).__name__}: {e}")
                time.sleep(0.5)

    def _handle(self, message: dict[str, Any]) -> None:
        from services.core.errors import StateConflict, TransientError
        from services.core.queues import SubmitRequest, parse_message
        from services.core.recordings import State
        from services.core.speech.provider import ConcurrencyLimitReached
        from services.submitter.pump import build_submission

        if not self._reserve():
            self._defer(message)
            return
        uuid = parse_message(SubmitRequest, message["Body"]).meeting_uuid
        recording = self.store.get(uuid)
        if recording is None or recording.state != State.MERGED:
            self._unreserve()
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return
        url = self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.rig.stack.names.media_bucket, "Key": recording.merged_key},
            ExpiresIn=3600,
        )
        callback = f"{self.server.url}/naive/{self.index[uuid]}"
        try:
            job = self.speech.submit_audio_url(build_submission(recording, url, callback))
        except (ConcurrencyLimitReached, TransientError):
            self._unreserve()
            self._defer(message)
            return
        with contextlib.suppress(StateConflict):  # the callback may have been first
            self.store.transition(
                uuid, State.MERGED, State.SUBMITTED, updates={"job_id": job.job_id}
            )
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def queue_empty(self) -> bool:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"])
            + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            == 0
        )

    def dlq_count(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.rig.stack.dlq_urls["submit"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])


def run_naive(stack: Any, credentials: Any, flac: Path, cfg: Config, moto_pid: int | None) -> Run:
    with bench_rig(stack, credentials, cfg) as (rig, timings):
        uuids = add_backlog(rig, cfg.backlog, flac)
        naive = Naive(rig, uuids, cfg, timings)
        threads = [
            threading.Thread(target=naive.consume, daemon=True) for _ in range(cfg.naive_consumers)
        ]
        pids = {"main": os.getpid()}
        if moto_pid:
            pids["moto"] = moto_pid
        cpu = CpuMeter(pids)
        moto_load(cfg.moto_url)  # resets moto's counters: the setup above is not measured
        moto_before = moto_errors()
        t0 = time.monotonic()
        for thread in threads:
            thread.start()
        state = rig.symbl

        progress = Stall(state)

        def finished() -> bool:
            if len(naive.done) >= cfg.backlog or progress.stalled():
                return True
            with naive._lock:
                idle = naive.in_flight == 0
            return idle and state.in_flight == 0 and naive.queue_empty()

        wait_for(finished, cfg.timeout, poll=0.5)
        wall = time.monotonic() - t0
        cpu_used = cpu.stop()
        load = moto_load(cfg.moto_url)
        naive.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        naive.server.stop()
        states = final_states(rig, uuids)
        return Run(
            scheme="naive",
            limit=cfg.limit,
            uuids=uuids,
            jobs=fake_jobs(state),
            rejections_429=sum(1 for r in state.rejections if r.status == 429),
            max_in_flight=state.max_in_flight,
            states=states,
            wall_seconds=wall,
            timings=timings,
            webhook_lags=webhook_lags(state),
            extra={
                "receives": float(naive.receives),
                "visibility changes": float(naive.deferrals),
                "dead-lettered": float(naive.dlq_count()),
                "moto internal errors": float(moto_errors() - moto_before),
            },
            errors=naive.errors,
            cpu=cpu_used,
            moto=load,
        )


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Metrics:
    wall: float
    backlog_seconds: float
    utilisation: float
    steady_utilisation: float
    ramp_seconds: float
    refill: list[float]
    slot_idle: list[float]
    callback_leg: list[float]
    pump_leg: list[float]
    rejections_429: int
    max_in_flight: int
    lost: int
    doubled: int


def measure(run: Run) -> Metrics:
    limit = run.limit
    accepts = sorted(a for _, _, a, _ in run.jobs)
    ends = sorted(e for _, _, _, e in run.jobs if e is not None)
    start, stop = accepts[0], accepts[-1]
    events = sorted([(a, 1) for a in accepts] + [(e, -1) for e in ends])

    def in_flight_area(since: float) -> float:
        area, level, last = 0.0, 0, since
        for t, delta in events:
            if t > stop:
                break
            if t > since:
                area += level * (t - last)
                last = t
            level += delta
        return area + level * (stop - last)

    level, full_at = 0, None
    for t, delta in events:
        level += delta
        if level >= limit:
            full_at = t
            break
    utilisation = in_flight_area(start) / (limit * max(stop - start, 1e-9))
    steady = float("nan")
    if full_at is not None and stop > full_at:
        steady = in_flight_area(full_at) / (limit * (stop - full_at))

    def next_accept(t: float) -> float:
        return accepts[bisect.bisect_right(accepts, t)]

    refill = [next_accept(e) - e for e in ends if e < stop]
    slot_idle = [accepts[k + limit] - ends[k] for k in range(len(ends)) if k + limit < len(accepts)]
    # Where a refill goes: job end → its slot released (DynamoDB / the counter) → next accept.
    callback_leg, pump_leg = [], []
    for job_id, _, _, end in run.jobs:
        freed = run.timings.released.get(job_id)
        if end is None or freed is None or end >= stop or freed >= stop:
            continue
        callback_leg.append(freed - end)
        pump_leg.append(next_accept(freed) - freed)
    names = Counter(name for _, name, _, _ in run.jobs)
    return Metrics(
        wall=run.wall_seconds,
        backlog_seconds=stop - start,
        utilisation=utilisation,
        steady_utilisation=steady,
        ramp_seconds=(full_at - start) if full_at is not None else float("nan"),
        refill=refill,
        slot_idle=slot_idle,
        callback_leg=callback_leg,
        pump_leg=pump_leg,
        rejections_429=run.rejections_429,
        max_in_flight=run.max_in_flight,
        lost=sum(1 for s in run.states.values() if s != "TRANSCRIBED"),
        doubled=sum(1 for n in names.values() if n > 1),
    )


def fmt(value: float, digits: int = 3) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:.{digits}f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "—"
    return f"{a / b:.2f}"


def metric_rows(m: Metrics, run: Run) -> dict[str, float]:
    return {
        "wall time, start → all settled (s)": m.wall,
        "backlog period, first → last submit (s)": m.backlog_seconds,
        "utilisation while backlog (%)": 100 * m.utilisation,
        "  after first reaching the limit (%)": 100 * m.steady_utilisation,
        "ramp to the limit (s)": m.ramp_seconds,
        "refill p50: job end → next submit (s)": percentile(m.refill, 0.5),
        "refill p95 (s)": percentile(m.refill, 0.95),
        "slot idle p50: k-th end → (L+k)-th submit (s)": percentile(m.slot_idle, 0.5),
        "slot idle p95 (s)": percentile(m.slot_idle, 0.95),
        "  job end → slot released p50 (s)": percentile(m.callback_leg, 0.5),
        "  job end → slot released p95 (s)": percentile(m.callback_leg, 0.95),
        "  slot released → next submit p50 (s)": percentile(m.pump_leg, 0.5),
        "  slot released → next submit p95 (s)": percentile(m.pump_leg, 0.95),
        "429s received": float(m.rejections_429),
        f"max in flight (limit {run.limit})": float(m.max_in_flight),
        "meetings lost (not TRANSCRIBED)": float(m.lost),
        "meetings doubled (submitted twice)": float(m.doubled),
    }


def targets(m: Metrics, cfg: Config, scheme: str) -> list[Target]:
    """One scheme's targets in one scenario; only ours are judged, timing ones at JUDGED_SCALE."""
    ours = scheme != "naive"
    timed = ours and cfg.scale >= JUDGED_SCALE
    p95 = percentile(m.refill, 0.95)
    return [
        Target("utilisation ≥ 97 %", m.utilisation >= 0.97, f"{100 * m.utilisation:.2f} %", timed),
        Target("refill p95 ≤ 1 s", p95 <= 1.0, f"{p95:.3f} s", timed),
        Target(
            "zero exceedances (max in flight ≤ limit, no 429)",
            m.max_in_flight <= cfg.limit and m.rejections_429 == 0,
            f"max {m.max_in_flight}/{cfg.limit}, {m.rejections_429} 429s",
            ours,
        ),
        Target(
            "zero lost or doubled",
            m.lost == 0 and m.doubled == 0,
            f"{m.lost} lost, {m.doubled} doubled",
            ours,
        ),
    ]


def print_scenario(cfg: Config, runs: dict[str, Run]) -> tuple[dict[str, Any], list[Target]]:
    measured = {name: measure(run) for name, run in runs.items()}
    rows = {name: metric_rows(measured[name], run) for name, run in runs.items()}
    print()
    print(
        f"== limit {cfg.limit}, backlog {cfg.backlog} meetings, job durations "
        f"U({cfg.job_seconds[0]:g}, {cfg.job_seconds[1]:g}) s (seed {cfg.seed}) =="
    )
    print(
        f"   ours: {cfg.pump_procs} pump processes + {cfg.pump_threads} pump threads, "
        f"reconciler every {cfg.reconcile_every:g} s; naive: {cfg.naive_consumers} consumer "
        f"threads, ChangeMessageVisibility {cfg.naive_defer} s"
    )
    names = list(runs)
    keys = list(next(iter(rows.values())))
    width = max(len(k) for k in keys) + 2
    compare = "ours" in runs and "naive" in runs
    header = "".join(f"{n:>10}" for n in names) + (f"{'ours/naive':>12}" if compare else "")
    print(f"{'metric':<{width}}{header}")
    for key in keys:
        digits = 1 if "%" in key else (3 if "(s)" in key else 0)
        line = "".join(f"{fmt(rows[n][key], digits):>10}" for n in names)
        if compare:
            line += f"{ratio(rows['ours'][key], rows['naive'][key]):>12}"
        print(f"{key:<{width}}{line}")
    for name, run in runs.items():
        extras = ", ".join(f"{k} {v:g}" for k, v in run.extra.items())
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in run.cpu.items())
        print(f"   {name}: {extras}; {cpu}")
        for error in run.errors[:5]:
            print(f"   {name} ERROR: {error}")
    print("targets (max in flight is capped by the fake itself: an attempt beyond it is a 429):")
    verdicts: dict[str, Any] = {}
    scenario = f"{cfg.limit}:{cfg.backlog}:{cfg.scale:g}"
    judged: list[Target] = []
    for name, m in measured.items():
        for target in targets(m, cfg, name):
            print(f"   {name:<6}{target.claim:<50}{verdict(target):>20}   ({target.shown})")
            verdicts[f"{name}: {target.claim}"] = {
                "met": target.met,
                "value": target.shown,
                "judged": target.judged,
            }
            judged.append(replace(target, claim=f"{scenario} {name}: {target.claim}"))
    verdicts["metrics"] = rows
    for name, run in runs.items():
        if name != "naive":
            print_profile(run)
    return verdicts, judged


def print_profile(run: Run) -> None:
    t = run.timings
    lags, wakes = run.webhook_lags, t.wakes
    print(f"profile ({run.scheme}): where the time goes")
    print(
        f"   terminal status → callback POST answered p50 {fmt(percentile(lags, 0.5))}"
        f" p95 {fmt(percentile(lags, 0.95))} s; nudge → pump running p50 "
        f"{fmt(percentile(wakes, 0.5))} p95 {fmt(percentile(wakes, 0.95))} s (n={len(wakes)})"
    )
    jobs = max(1, len(run.jobs))
    dynamo = sum(len(v) for k, v in t.samples.items() if ".slots." in k or ".store." in f".{k}")
    dynamo += sum(len(v) for k, v in t.samples.items() if k.startswith("slots."))
    sqs = sum(len(v) for k, v in t.samples.items() if "sqs." in k)
    print(
        f"   per accepted job: {dynamo / jobs:.1f} DynamoDB calls (a GSI lookup counts once), "
        f"{sqs / jobs:.1f} SQS calls"
    )
    if run.moto:
        busy = sum(seconds for _, seconds in run.moto.values())
        top = sorted(run.moto.items(), key=lambda item: -item[1][1])[:8]
        print(
            f"   moto's own work {busy:.1f} s in {run.wall_seconds:.1f} s wall (DynamoDB one "
            f"request at a time); by operation, calls per job / seconds: "
            + ", ".join(f"{op} {n / jobs:.1f}/{sec:.1f}" for op, (n, sec) in top)
        )
    print(f"   {'call':<34}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'total s':>9}")
    for name in sorted(t.samples):
        values = t.samples[name]
        if name == "rec.repairs":
            print(f"   {'reconciler repairs':<34}{int(sum(values)):>6}")
            continue
        print(
            f"   {name:<34}{len(values):>6}{1000 * percentile(values, 0.5):>9.1f}"
            f"{1000 * percentile(values, 0.95):>9.1f}{1000 * statistics.fmean(values):>9.1f}"
            f"{sum(values):>9.2f}"
        )


FULL = "50:300:16,2:12:16,50:300:4"
QUICK = "50:120:8,2:8:2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Submitter pump vs naive counter benchmark")
    parser.add_argument("--quick", action="store_true", help=f"scenarios {QUICK} (under 2 min)")
    parser.add_argument(
        "--scenarios",
        help=f"LIMIT:BACKLOG:SCALE,... job durations U(0.5, 2.0) x SCALE s (default {FULL})",
    )
    parser.add_argument("--schemes", default="ours,naive")
    parser.add_argument("--pump-procs", type=int, default=3, help="pump processes (Lambdas)")
    parser.add_argument("--pump-threads", type=int, default=0, help="pump threads in-process")
    parser.add_argument("--naive-consumers", type=int, help="default: as many as pumps")
    parser.add_argument("--naive-defer", type=int, default=5, help="visibility timeout (s)")
    parser.add_argument("--reconcile-every", type=float, default=1.0)
    parser.add_argument("--webhook-workers", type=int, default=16, help="fake's callback senders")
    parser.add_argument("--moto", choices=("process", "inproc"), default="process")
    parser.add_argument("--real-analysis", action="store_true", help="keep the fake's ffmpeg")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", help="write verdicts and metrics to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from sandbox.aws_resources import StackNames, provision
    from sandbox.credentials import SandboxCredentials
    from sandbox.local_aws import LocalAws
    from services.core import aws
    from tests.support.submitter_rig import two_channel_flac

    if not args.real_analysis:
        memoise_fake_analysis()
    scenarios = [
        (int(limit), int(backlog), float(scale))
        for limit, backlog, scale in (
            item.split(":")
            for item in (args.scenarios or (QUICK if args.quick else FULL)).split(",")
        )
    ]
    schemes = args.schemes.split(",")
    workers = args.pump_procs + args.pump_threads
    started = time.monotonic()
    results: dict[str, Any] = {}
    judged: list[Target] = []
    with contextlib.ExitStack() as ctx:
        tmp = Path(ctx.enter_context(tempfile.TemporaryDirectory(prefix="bench-sub-")))
        flac = two_channel_flac(tmp / "two.flac")
        moto_pid, url = None, ""
        if args.moto == "process":
            url, moto_pid = ctx.enter_context(moto_process())
            ctx.enter_context(LocalAws(endpoint_url=url))
        else:
            ctx.enter_context(LocalAws())
        credentials = SandboxCredentials()
        print(
            f"submitter bench: moto {args.moto}, fake analysis "
            f"{'real ffmpeg' if args.real_analysis else 'memoised'}, {os.cpu_count()} cores"
        )
        for n, (limit, backlog, scale) in enumerate(scenarios):
            cfg = Config(
                backlog=backlog,
                limit=limit,
                pump_threads=args.pump_threads,
                pump_procs=args.pump_procs,
                naive_consumers=args.naive_consumers or workers,
                naive_defer=args.naive_defer,
                reconcile_every=args.reconcile_every,
                webhook_workers=args.webhook_workers,
                timeout=600.0,
                moto_url=url if args.moto == "process" else None,
                scale=scale,
                seed=args.seed,
            )
            runs: dict[str, Run] = {}
            for scheme in schemes:
                aws.reset_clients()
                prefix = f"bs{n}{scheme}"
                stack = provision(StackNames(prefix), credentials.secret_values())
                t0 = time.monotonic()
                if scheme == "naive":
                    runs[scheme] = run_naive(stack, credentials, flac, cfg, moto_pid)
                else:
                    runs[scheme] = run_ours(stack, credentials, flac, cfg, moto_pid)
                print(f"   ({scheme}, limit {limit}: {time.monotonic() - t0:.1f} s with setup)")
            name = f"limit {limit}, backlog {backlog}, scale {scale:g}"
            results[name], scenario_targets = print_scenario(cfg, runs)
            judged += scenario_targets
    print(f"\ntotal bench time {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return report(judged)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-moto":
        sys.exit(serve_moto())
    if len(sys.argv) > 2 and sys.argv[1] == "--pump-worker":
        sys.exit(pump_worker(sys.argv[2]))
    sys.exit(main())
