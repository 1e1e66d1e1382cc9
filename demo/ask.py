"""Ask a served model once: wait until it is ready, send one inference, print the answer and a few
/metrics lines. Usage: python demo/ask.py PORT MODEL"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request


def main(port: int, model: str) -> None:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                sys.exit("the server did not become ready within 120 s")
            time.sleep(0.3)
    body = {
        "inputs": [
            {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.1]}
        ]
    }
    print(f"$ POST {base}/v2/models/{model}/infer  {json.dumps(body)}")
    request = urllib.request.Request(
        f"{base}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    print(f"model_version: {answer['model_version']}  logits: {answer['outputs'][0]['data']}")
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode().splitlines()
    print("$ GET /metrics | grep modelreg_")
    for line in metrics:
        if line.startswith(
            (
                "modelreg_model_info",
                "modelreg_requests_total",
                "modelreg_request_duration_seconds_count",
            )
        ):
            print("  " + line)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
