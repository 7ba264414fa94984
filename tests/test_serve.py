"""`vitkit serve` as a user meets it: a real server process on 127.0.0.1, a real HTTP client.
Predictions equal predict_files'; requests batch across clients; bad input is a 4xx with a
one-line JSON error and the server stays up; the bearer token; SIGTERM drains in-flight requests."""
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
from PIL import Image

import vitkit
from vitkit.inference.predict import predict_files

from test_train import ENV


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(*args, env=None):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vitkit", "serve", "cifar10_vit_tiny", "--port", str(port), *args],
                            env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def _jpeg(path) -> bytes:
    return open(path, "rb").read()


def _metric(text, name):
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture(scope="module")
def images(cifar_small):
    return sorted(str(p) for p in (cifar_small / "test").rglob("*.jpg"))[:20]


@pytest.fixture(scope="module")
def live(images):
    with server("--max-batch", "32", "--max-wait-ms", "20", "--max-body-mb", "0.05", "--max-pixels", "1000000",
                "--body-timeout-s", "1") as (url, proc):
        yield url


def test_predictions_equal_predict_files(live, images):
    # The server picks its precision from the CPU ("auto": bf16 where the CPU has native bf16, as on
    # the AMX VMs CI runs on); compare with predict_files at the precision the server reports, or a
    # bf16 server is judged against fp32 and misses by ~6e-4.
    precision = httpx.get(live + "/health").json()["precision"]
    ref = predict_files(vitkit.load_model("cifar10_vit_tiny"), images[:4], topk=3, precision=precision)
    for path, want in zip(images[:4], ref):
        r = httpx.post(live + "/predict?topk=3", content=_jpeg(path), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        got = r.json()["topk"]
        assert [t["label"] for t in got] == [t["label"] for t in want["topk"]]
        assert [t["prob"] for t in got] == pytest.approx([t["prob"] for t in want["topk"]], abs=1e-4)
    files = [("file", (os.path.basename(p), _jpeg(p), "image/jpeg")) for p in images[:2]]
    r = httpx.post(live + "/predict", files=files)
    assert r.status_code == 200 and isinstance(r.json(), list) and len(r.json()) == 2 and len(r.json()[0]["topk"]) == 5


def test_concurrent_clients_are_batched(live, images):
    before = httpx.get(live + "/metrics").text
    results = []

    def client(p):
        results.append(httpx.post(live + "/predict", content=_jpeg(p), headers={"Content-Type": "image/jpeg"},
                                  timeout=60).status_code)

    threads = [threading.Thread(target=client, args=(p,)) for p in images[:16]]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [200] * 16
    after = httpx.get(live + "/metrics").text
    batches = _metric(after, "vitkit_batch_size_count") - _metric(before, "vitkit_batch_size_count")
    assert 1 <= batches < 16  # 16 images in fewer forward passes: requests shared batches
    assert _metric(after, 'vitkit_requests_total{status="200"}') >= 16
    assert _metric(after, "vitkit_requests_in_flight") == 0  # every request answered is off the gauge


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, "PNG")  # 4 Mpx, a few KB compressed
    return buf.getvalue()


@pytest.mark.parametrize("content, ctype, status, words", [
    (b"", "image/jpeg", 400, "empty"),
    (b"not an image at all", "image/jpeg", 400, "not an image"),
    (None, "image/jpeg", 400, "unreadable image"),  # a truncated JPEG
    (b"x" * 60_000, "image/jpeg", 413, "over the limit"),
    ("bomb", "image/png", 413, "over the limit of 1000000"),
    (b"hello", "text/plain", 415, "Content-Type text/plain"),
])
def test_bad_input_is_a_4xx_with_one_line(live, images, content, ctype, status, words):
    if content is None:
        content = _jpeg(images[0])[:300]
    elif content == "bomb":
        content = _bomb()
    r = httpx.post(live + "/predict", content=content, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "\n" not in r.json()["error"]
    assert httpx.get(live + "/health").status_code == 200  # still up


def test_bad_topk_and_stalled_client(live):
    r = httpx.post(live + "/predict?topk=0", content=b"x", headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and "topk" in r.json()["error"]
    host, port = live.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # promises 1000 bytes, sends 10
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789")
        reply = b""
        while b"did not arrive" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive" in reply


def test_token_is_required_except_for_health(images, tmp_path):
    with server(env={"VITKIT_SERVE_TOKEN": "s3cret"}) as (url, _):
        body, h = _jpeg(images[0]), {"Content-Type": "image/jpeg"}
        assert httpx.post(url + "/predict", content=body, headers=h).status_code == 401
        assert httpx.post(url + "/predict", content=body, headers={**h, "Authorization": "Bearer nope"}).status_code == 401
        assert httpx.post(url + "/predict", content=body, headers={**h, "Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(url + "/metrics").status_code == 401 and httpx.get(url + "/health").status_code == 200


def test_sigterm_drains_in_flight_requests(images):
    # Requests wait up to 5 s for company (max batch 8 > 4 clients), so all four are held in flight;
    # SIGTERM goes only once /metrics says the server holds all four. The trap: a fixed sleep before
    # SIGTERM races the clients' connects on a loaded 2-core runner, and a request not yet accepted
    # is refused by a draining server — correctly, but the test would call it a lost request.
    with server("--max-batch", "8", "--max-wait-ms", "5000") as (url, proc):
        codes, errors = [], []

        def client(p):
            try:
                codes.append(httpx.post(url + "/predict", content=_jpeg(p), headers={"Content-Type": "image/jpeg"},
                                        timeout=60).status_code)
            except httpx.TransportError as e:
                errors.append(e)

        threads = [threading.Thread(target=client, args=(p,)) for p in images[:4]]
        [t.start() for t in threads]
        deadline = time.monotonic() + 30
        while _metric(httpx.get(url + "/metrics").text, "vitkit_requests_in_flight") < 4:
            assert time.monotonic() < deadline, "the four requests never were in flight together"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        [t.join() for t in threads]
        # uvicorn drains, then re-raises the signal for the default handler: exit by SIGTERM, not a crash
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert codes == [200] * 4 and not errors  # accepted before SIGTERM, answered after it


def test_bad_model_is_one_line_before_the_server_starts(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vitkit", "serve", str(tmp_path / "nope.pt"), "--port", str(_free_port())],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr
