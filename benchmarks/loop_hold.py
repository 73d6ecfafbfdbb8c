"""How long a big request holds the server's other callers: `/healthz` latency while a
6.6 MB request (16 leads with 3,000 activities each) is scored three times.

Start a server first (`leadscore serve`, with LEADSCORE_MAX_BODY_BYTES above the body's
size), then run `python -P benchmarks/loop_hold.py --port PORT --key KEY`. To compare with
everything on the event loop in the same run, restart the server with
LEADSCORE_INLINE_MAX_ROWS and LEADSCORE_INLINE_MAX_BYTES set very high and run it again.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx


def body(leads: int = 16, activities: int = 3000) -> bytes:
    acts = [{"occurred_at": f"2026-11-2{j % 9 + 1}T10:00:00+00:00", "type": "web_visit",
             "direction": "inbound", "contact_id": "C1"} for j in range(activities)]
    return json.dumps({"leads": [
        {"lead_id": f"L{i}", "created_at": "2026-10-01T00:00:00+00:00",
         "activities": [{**a, "activity_id": f"L{i}A{j}"} for j, a in enumerate(acts)]}
        for i in range(leads)]}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--key", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw = body()
    base = f"http://127.0.0.1:{args.port}"
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                start = time.perf_counter()
                client.get(f"{base}/healthz")
                latencies.append(time.perf_counter() - start)
                time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    for _ in range(args.repeat):
        start = time.perf_counter()
        r = httpx.post(f"{base}/v1/leads/score", content=raw, timeout=120,
                       headers={"Authorization": f"Bearer {args.key}",
                                "content-type": "application/json"})
        print(f"score: {r.status_code} in {(time.perf_counter() - start) * 1000:.0f} ms")
    time.sleep(0.3)
    stop.set()
    poller.join()
    latencies.sort()
    print(f"body {len(raw) / 1e6:.1f} MB; /healthz: {len(latencies)} requests, "
          f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
