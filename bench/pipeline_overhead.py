"""What the architecture costs per job: end-to-end latency minus the worker's compute time.

Starts the embedded stack (moto, Tansu, API, poller, one worker, each its own process), submits N tiny
generation jobs one after another, and for each measures the wall time from POST to the moment a client
polling every few milliseconds sees `completed`. The baseline, measured in the same run, is the worker's
own time for the job (pipeline load + diffusion + encode/upload, as reported in result.json); the overhead
is what the rest adds: API + DynamoDB + Kafka + S3 + notification + SQS poll + status write.

    python bench/pipeline_overhead.py --jobs 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from infra.local.stack import EmbeddedStack


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    """Run the benchmark and print per-job figures, medians, p99 and the overhead/compute ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--poll-ms", type=float, default=5.0)
    args = parser.parse_args()

    stack = EmbeddedStack()
    info = stack.start()
    try:
        client = httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}, timeout=30)
        body = {
            "modelId": "tiny-sd",
            "prompt": "a red fox",
            "width": 64,
            "height": 64,
            "numOutputs": 1,
            "numInferenceSteps": 2,
        }
        rows = []
        for i in range(args.warmup + args.jobs):
            started = time.perf_counter()
            job_id = client.post("/v1/images/generate", json={**body, "seed": i}).raise_for_status().json()["jobId"]
            while True:
                view = client.get(f"/v1/images/jobs/{job_id}").json()
                if view["status"] in ("completed", "failed"):
                    break
                time.sleep(args.poll_ms / 1000)
            end_to_end = (time.perf_counter() - started) * 1000
            assert view["status"] == "completed", view
            t = view["timings"]
            worker = t["loadMs"] + t["computeMs"] + t["uploadMs"]
            if i >= args.warmup:
                rows.append((job_id, end_to_end, worker, end_to_end - worker))
    finally:
        stack.stop()

    print(f"{'job':<30} {'end-to-end ms':>14} {'worker ms':>10} {'overhead ms':>12}")
    for job_id, e2e, worker, overhead in rows:
        print(f"{job_id:<30} {e2e:>14.1f} {worker:>10.1f} {overhead:>12.1f}")
    overheads = [r[3] for r in rows]
    workers = [r[2] for r in rows]
    e2es = [r[1] for r in rows]
    print()
    print(f"jobs: {len(rows)} (after {args.warmup} warm-up), client poll interval {args.poll_ms} ms")
    print(f"end-to-end      median {statistics.median(e2es):8.1f} ms   p99 {percentile(e2es, 99):8.1f} ms")
    print(f"baseline: worker median {statistics.median(workers):8.1f} ms   p99 {percentile(workers, 99):8.1f} ms")
    print(f"overhead        median {statistics.median(overheads):8.1f} ms   p99 {percentile(overheads, 99):8.1f} ms")
    print(f"ratio overhead / worker time (medians): {statistics.median(overheads) / statistics.median(workers):.2f}")


if __name__ == "__main__":
    main()
