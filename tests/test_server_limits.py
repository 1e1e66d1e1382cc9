"""modelreg serve under the conditions a pod meets (issue #20), each with a real server process and
real clients on 127.0.0.1:

- SIGTERM under load: readiness fails at once, the server keeps serving through the drain, and every
  request sent before the client saw readiness fail is answered 200 (a load balancer's view: it
  stops sending once the endpoint is not ready); the process then exits 0.
- A body over the limit, sent whole before the answer is read (urllib), reads a 413 JSON.
- Slow clients: headers trickled, a body that stalls, an idle connection: 408 or closed, bounded.
- Overload: more inference requests in flight than --max-inflight get 503 with Retry-After at once,
  while the health probes still answer.
- A model that raises: 500 with a request id and no traceback or source path; the log has both; the
  answer is counted in modelreg_requests_total.
- fetch run again (an init container restarted over its emptyDir): kept without a download when the
  bytes are the registered ones, replaced otherwise; four ways the storage fails, four messages.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import Env, free_port
from modelreg.register import RegisterRequest, register
from modelreg.remote_config import add_remote
from modelreg.store import object_url
from modelreg.versions import resolve
from test_serving import SIGNATURE, Server, fetch, infer_body, register_model, start_server

pytest.importorskip("torch")
import torch  # noqa: E402

from helpers.models import Fussy  # noqa: E402

pytest.importorskip("kserve")

INFER = "/v2/models/churn/infer"


def output(server: Server) -> str:
    """What the server printed (after it exited)."""
    return server.proc.stdout.read() if server.proc.stdout else ""


@pytest.fixture
def limited(env: Env) -> Generator[Server, None, None]:
    register_model(env, 1)
    yield from start_server(
        env.root,
        "churn@v1",
        "--max-body",
        "65536",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--keep-alive",
        "1",
        "--max-inflight",
        "2",
    )


def raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=15)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket
    timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_under_load_answers_everything_sent_before_readiness_failed(env: Env) -> None:
    register_model(env, 1)
    servers = start_server(env.root, "churn@v1", "--drain-seconds", "3")
    server = next(servers)  # (the generator stops the server when it is closed or collected)
    not_ready = threading.Event()
    results: list[tuple[str, float, Any]] = []  # (what, when, outcome)
    lock = threading.Lock()

    def probe() -> None:
        while not not_ready.is_set():
            try:
                code = server.request("GET", "/v2/health/ready")[0]
            except OSError:
                code = 0
            if code != 200:
                not_ready.set()
            time.sleep(0.05)

    def load(keep_alive: bool) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while not not_ready.is_set():
            sent = time.monotonic()
            try:
                if not keep_alive:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                conn.request(
                    "POST",
                    INFER,
                    infer_body([[1, 2, 3, 4]] * 8),
                    {"content-type": "application/json"},
                )
                response = conn.getresponse()
                outcome: Any = (response.status, json.loads(response.read())["model_version"])
            except Exception as exc:  # every failure counts
                outcome = repr(exc)
            with lock:
                results.append(("infer", sent, outcome))

    threads = [threading.Thread(target=probe)] + [
        threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    term_at = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=60)
    code = server.proc.wait(timeout=30)
    exited = time.monotonic()
    failed = [r for r in results if r[2] != (200, "v1")]
    assert not failed, (
        term_at,
        failed[:5],
        len(results),
        output(server),
    )
    after = [r for r in results if r[1] >= term_at]
    assert after, "no request was sent during the drain: the test did not exercise it"
    assert not_ready.is_set() and code == 0, (
        code,
        output(server),
    )
    assert exited - term_at < 3 + 10, "the server did not exit after its drain"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    servers.close()


def test_a_body_over_the_limit_is_a_413_a_client_sending_it_whole_can_read(limited: Server) -> None:
    too_big = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [0.5] * 30000}
            ]
        }
    ).encode()
    assert 65536 < len(too_big) < 4 * 65536
    request = urllib.request.Request(
        limited.url + INFER,
        data=too_big,
        method="POST",
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert (
        caught.value.code == 413 and "over 65536 bytes" in json.loads(caught.value.read())["error"]
    )
    # chunked, no length announced: the same answer
    conn = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=30)
    conn.request(
        "POST",
        INFER,
        body=iter([too_big[i : i + 8192] for i in range(0, len(too_big), 8192)]),
        headers={"content-type": "application/json"},
        encode_chunked=True,
    )
    answer = conn.getresponse()
    assert (
        answer.status == 413
        and answer.getheader("connection") == "close"
        and json.loads(answer.read())["error"]
    )
    # a client that waits for 100-continue is refused before it sends a byte of the body
    with raw(limited.port) as sock:
        sock.sendall(
            b"POST "
            + INFER.encode()
            + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 10000000\r\nexpect: 100-continue\r\n\r\n"
        )
        head = read_all(sock)
    assert head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head
    assert (
        limited.request("POST", INFER, infer_body([[1, 2, 3, 4]]))[0] == 200
    )  # and it still serves


def test_slow_clients_are_timed_out(limited: Server) -> None:
    # headers trickled a byte at a time, for longer than --header-timeout 1
    with raw(limited.port) as sock:
        sock.sendall(b"POST " + INFER.encode() + b" HTTP/1.1\r\n")
        answer, started = b"", time.monotonic()
        try:
            for _ in range(40):
                sock.sendall(b"x")
                time.sleep(0.25)
        except OSError:
            pass  # closed by the server while we trickled: what we want
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"headers did not arrive" in answer
    assert time.monotonic() - started < 9, (
        "the trickled headers held the connection for the whole trickle"
    )
    # a connection that says nothing
    with raw(limited.port) as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 408")
    # a body that stalls after its headers
    with raw(limited.port) as sock:
        sock.sendall(
            b"POST "
            + INFER.encode()
            + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"inputs"'
        )
        stalled = read_all(sock)
    assert stalled.startswith(b"HTTP/1.1 408") and b"stalled" in stalled
    # an idle kept-alive connection is closed after --keep-alive 1
    conn = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=15)
    conn.request("GET", "/v2/health/live")
    assert conn.getresponse().read()
    assert conn.sock is not None and read_all(conn.sock) == b""
    assert limited.request("GET", "/v2/health/ready")[0] == 200


def test_overload_is_a_fast_503_and_the_probes_still_answer(limited: Server) -> None:
    holders = []
    for _ in range(2):  # two requests in flight: their bodies have not arrived yet
        sock = raw(limited.port)
        sock.sendall(
            b"POST "
            + INFER.encode()
            + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n"
        )
        holders.append(sock)
    time.sleep(0.2)
    request = urllib.request.Request(
        limited.url + INFER,
        data=infer_body([[1, 2, 3, 4]]),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 503 and caught.value.headers["retry-after"] == "1"
    assert "in flight" in json.loads(caught.value.read())["error"]
    assert limited.request("GET", "/v2/health/live")[0] == 200
    assert limited.request("GET", "/v2/health/ready")[0] == 200
    for sock in holders:
        sock.close()
    deadline = time.monotonic() + 10
    while limited.request("POST", INFER, infer_body([[1, 2, 3, 4]]))[0] != 200:
        assert time.monotonic() < deadline, (
            "the server did not take requests again once the others left"
        )
        time.sleep(0.2)
    metrics = limited.request("GET", "/metrics")[1]
    assert re.search(
        r'modelreg_requests_total\{code="503",model="churn",version="v1"\} [1-9]', metrics
    ), metrics


def test_a_model_that_raises_answers_a_short_500_with_a_request_id_and_is_counted(env: Env) -> None:
    card = env.work / "card.yaml"
    card.write_text(yaml.safe_dump(SIGNATURE))
    source = env.work / "fussy" / "model.pt"
    source.parent.mkdir(parents=True)
    torch.jit.script(Fussy()).save(str(source))
    register(env.registry, RegisterRequest("churn", source, card_file=card))
    servers = start_server(env.root, "churn@v1")
    server = next(servers)
    try:
        assert server.request("POST", INFER, infer_body([[1, 2, 3, 4]]))[0] == 200
        code, answer = server.request(
            "POST", INFER, infer_body([[100, 2, 3, 4]]), {"x-request-id": "req-42"}
        )
        assert code == 500 and answer == {
            "error": "the model failed on this request (request id req-42; the server's log has "
            "the details)"
        }
        code, answer = server.request(
            "POST", INFER, infer_body([[100, 2, 3, 4]]), {"x-request-id": "not a token; <script>"}
        )
        assert (
            code == 500 and "secret" not in answer["error"] and "Traceback" not in answer["error"]
        )
        assert ".py" not in answer["error"] and "request id " in answer["error"]
        metrics = server.request("GET", "/metrics")[1]
        assert 'modelreg_requests_total{code="500",model="churn",version="v1"} 2.0' in metrics
        assert 'modelreg_requests_total{code="200",model="churn",version="v1"} 1.0' in metrics
    finally:
        next(servers, None)  # stops it
    log = output(server)
    assert "req-42" in log and "the secret threshold was crossed" in log and "Traceback" in log


def test_fetch_again_keeps_the_registered_bytes_and_replaces_anything_else(
    env: Env, tmp_path: Path
) -> None:
    register_model(env, 1)
    found = resolve(env.registry, "churn@v1")
    url, md5, sha = (
        object_url(str(env.store), found.pointer.md5),
        found.pointer.md5,
        found.card["artifact"]["sha256"],
    )
    out = tmp_path / "models" / "model.pt"
    first = fetch(url, md5, sha, out)
    assert first.returncode == 0 and json.loads(first.stdout)["reused"] is False, first.stderr
    stored = Path(url)
    kept_bytes = stored.read_bytes()
    stored.chmod(0o644)
    stored.unlink()  # the remote no longer has it: a second run must not need it
    again = fetch(url, md5, sha, out)
    assert again.returncode == 0 and json.loads(again.stdout)["reused"] is True, again.stderr
    assert out.read_bytes() == kept_bytes
    out.write_bytes(
        b"someone else's bytes"
    )  # other bytes, and the object gone: the fetch fails, they stay
    failed = fetch(url, md5, sha, out)
    assert failed.returncode == 1 and "is not in the remote" in failed.stderr
    assert out.read_bytes() == b"someone else's bytes"
    stored.write_bytes(kept_bytes)
    for other in (
        "file",
        "folder",
        "link",
    ):  # whatever else is there is replaced by the registered bytes
        if out.is_dir():
            import shutil

            shutil.rmtree(out)
        else:
            out.unlink()
        if other == "file":
            out.write_bytes(kept_bytes[:-1] + b"!")
        elif other == "folder":
            (out / "inner").mkdir(parents=True)
        else:
            (tmp_path / "elsewhere").write_bytes(kept_bytes)
            out.symlink_to(tmp_path / "elsewhere")
        replaced = fetch(url, md5, sha, out)
        assert replaced.returncode == 0 and json.loads(replaced.stdout)["reused"] is False, (
            other,
            replaced.stderr,
        )
        assert not out.is_symlink() and out.read_bytes() == kept_bytes
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "model.pt"
    ]  # nothing half-written beside it


class Refusing(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request, as S3 does without the right credentials."""

    def do_GET(self) -> None:  # noqa: N802
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied</Message></Error>"
        )
        self.send_response(403)
        self.send_header("content-type", "application/xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def test_four_ways_the_storage_fails_are_four_messages_naming_the_url(
    env: Env, tmp_path: Path, s3: str
) -> None:
    add_remote(env.registry, "s3://models/registry", endpoint_url=s3)
    register_model(env, 1)
    found = resolve(env.registry, "churn@v1")
    md5, sha = found.pointer.md5, found.card["artifact"]["sha256"]
    url = object_url("s3://models/registry", md5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does) and never answers
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    try:
        cases = {
            "cannot connect to the storage": f"http://127.0.0.1:{free_port()}",
            "did not answer in time": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "access refused by the storage": f"http://127.0.0.1:{refusing.server_address[1]}",
            "is not in the remote": s3,
        }
        if True:  # the missing object: gone from the bucket
            import boto3

            boto3.client("s3", endpoint_url=s3).delete_object(
                Bucket="models", Key=url.removeprefix("s3://models/")
            )
        for message, endpoint in cases.items():
            out = tmp_path / message.replace(" ", "-") / "model.pt"
            result = fetch(url, md5, sha, out, "--timeout", "1", AWS_ENDPOINT_URL=endpoint)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and message in lines[-1] and url in lines[-1], (
                message,
                result.stderr,
            )
            assert "Traceback" not in result.stderr and not out.exists()
    finally:
        refusing.shutdown()
        silent.close()
