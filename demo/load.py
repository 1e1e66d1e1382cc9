"""A bounded load for the demo's canaries: RATE requests a second to each served model on 127.0.0.1
for SECONDS, every third one with features that sum over 100 (a model that cannot take them
answers 500). Usage: python demo/load.py SECONDS PORT [PORT ...]"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.request

RATE = 8


def body(big: bool) -> bytes:
    data = [100.0, 2.0, 3.0, 4.0] if big else [0.5, -1.0, 2.0, 0.1]
    tensor = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def main(seconds: float, ports: list[int]) -> None:
    ends = time.monotonic() + seconds
    number = 0
    while time.monotonic() < ends:
        started = time.monotonic()
        for port in ports:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v2/models/churn/infer",
                data=body(number % 3 == 0),
                headers={"content-type": "application/json"},
            )
            # a 500 is what the failing candidate answers: Prometheus counts it
            with contextlib.suppress(urllib.error.URLError, OSError):
                urllib.request.urlopen(request, timeout=5).read()
        number += 1
        time.sleep(max(0.0, 1 / RATE - (time.monotonic() - started)))


if __name__ == "__main__":
    main(float(sys.argv[1]), [int(p) for p in sys.argv[2:]])
