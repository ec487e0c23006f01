"""What the action sandbox costs one run: the wall time of a `true` shell action
through the runner (directories, process, pipes, control file, result) with
EXECD_SANDBOX=none and with bubblewrap, run after run on one core.

    python bench/sandbox.py -n 200

The end-to-end cost on a server is measured with bench/throughput.py:

    python bench/throughput.py --spawn sqlite -n 1000 --action core.shell \\
        --parameters '{"cmd": "true"}' --server-env EXECD_SANDBOX=none
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from execd.domain.executions import Execution
from execd.domain.sandbox import Limits
from execd.domain.states import Priority, Status
from execd.runners import sandbox
from execd.runners.base import RunContext
from execd.runners.command import ShellRunner
from execd.runners.paths import ExecutionPaths


def execution(number: int, cmd: str) -> Execution:
    return Execution(
        id=number,
        uuid=str(uuid.uuid4()),
        tenant_id="bench",
        project_id="bench",
        action_id=None,
        action_ref="core.shell",
        pack="core",
        runner="shell",
        entry_point="",
        parameters={"cmd": cmd},
        status=Status.RUNNING,
        priority=Priority.NORMAL,
        attempt=1,
        max_attempts=1,
        retry_policy=None,
        fence=1,
        created=0.0,
        updated=0.0,
    )


async def measure(box: sandbox.Sandbox, n: int, cmd: str, root: Path) -> list[float]:
    runner = ShellRunner()
    took = []
    for number in range(1, n + 1):
        run = execution(number, cmd)
        paths = ExecutionPaths(root / "work" / run.uuid, root / "store" / run.uuid)
        ctx = RunContext(
            execution=run,
            paths=paths,
            output_limit=1 << 20,
            result_limit=1 << 20,
            kill_grace=1.0,
            sandbox=box,
        )
        start = time.perf_counter()
        outcome = await runner.run(ctx)
        took.append(time.perf_counter() - start)
        assert outcome.status is Status.COMPLETED, outcome.error
        shutil.rmtree(paths.run_dir)
    return took


def summary(took: list[float]) -> dict[str, float]:
    ordered = sorted(took)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="runs per sandbox and round")
    parser.add_argument("--cmd", default="true")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="execd-bench-sandbox-"))
    boxes: dict[str, sandbox.Sandbox] = {
        "none": sandbox.Unsandboxed(Limits()),
        "bubblewrap": sandbox.build(
            "bubblewrap",
            Limits(processes=512, memory_bytes=2 << 30),
            read_only=sandbox.python_paths([]),
            forbidden=[root],
            uid_base=3_000_000,
            tmp_bytes=64 << 20,
        ),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in boxes}
    try:
        for _ in range(args.rounds):
            for name, box in boxes.items():
                took = asyncio.run(measure(box, args.n, args.cmd, root))
                results[name].append(summary(took))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"n": args.n, "cmd": args.cmd, "rounds": results}, indent=2))


if __name__ == "__main__":
    main()
