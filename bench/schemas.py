"""What costly parameter schemas cost the server, and everyone else.

    python bench/schemas.py --spawn sqlite          # starts its own server
    python bench/schemas.py --spawn postgresql

Defines one action per case, each a schema whose validation jsonschema does in more
than linear time, or that multiplies its own work, with parameters of about 100 KB:

* `unique`: `{"type": "array", "uniqueItems": true}` and 8,000 objects `{"a": i}`
  (a review's case: 129 s for one submission before `uniqueItems` was linear);
* `enum`: 5,000 items, each checked against an `enum` of 5,000 numbers;
* `unevaluated`: an object of 20,000 properties under `unevaluatedProperties`
  (jsonschema looks each property up in a list);
* `doubling`: 40 levels of `$defs` each applying the next twice (2**40
  applications of the last), which only the budget of steps stops;
* `plain`: 8,000 objects under an `items` schema, a large but ordinary validation.

Then, as bench/patterns.py does: each submitted N times (answer status, p50 and max),
and GET /healthz timed every 50 ms for a few seconds, idle and while 1 and A clients
submit one case back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from patterns import healthz_while, operator_client, submissions
from throughput import spawned_server


def cases() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each case's parameters schema, and the parameters submitted."""

    def one(schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"x": schema}}

    doubling: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    doubling["d40"] = {"type": "string"}
    objects = [{"a": i} for i in range(8000)]
    return {
        "unique": (one({"type": "array", "uniqueItems": True}), {"x": objects}),
        "enum": (
            one({"type": "array", "items": {"enum": list(range(5000))}}),
            {"x": [4999] * 5000},
        ),
        "unevaluated": (
            one({"type": "object", "unevaluatedProperties": {"type": "integer"}}),
            {"x": {str(i): i for i in range(20000)}},
        ),
        "doubling": (
            {"type": "object", "$defs": doubling, "properties": {"x": {"$ref": "#/$defs/d0"}}},
            {"x": "text"},
        ),
        "plain": (
            one({"type": "array", "items": {"type": "object", "properties": {"a": {}}}}),
            {"x": objects},
        ),
    }


async def measure(url: str, admin_token: str, args: argparse.Namespace) -> None:
    async with operator_client(url, admin_token, args.attackers, 600) as client:
        chosen = {k: v for k, v in cases().items() if k in args.cases.split(",")}
        bodies = {}
        for name, (schema, parameters) in chosen.items():
            definition = {
                "ref": f"bench.{name}",
                "runner": "shell",
                "entry_point": "true",
                "parameters": schema,
            }
            created = await client.post("/api/v1/actions", json=definition)
            created.raise_for_status()
            bodies[name] = {"action_ref": f"bench.{name}", "parameters": parameters}
        print(f"load average {os.getloadavg()[0]:.1f}; {args.n} submissions each")
        await submissions(client, bodies, args.n)
        await healthz_while(client, "", None, 0, args.seconds)
        for name, body in bodies.items():
            for attackers in sorted({1, args.attackers}):
                await healthz_while(client, name, body, attackers, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawn", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-n", type=int, default=10, help="submissions of each case")
    parser.add_argument("-a", "--attackers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each /healthz phase")
    parser.add_argument("--cases", default=",".join(cases()), help="which cases to time")
    args = parser.parse_args()
    with spawned_server(args.spawn, {}) as (url, token):
        asyncio.run(measure(url, token, args))


if __name__ == "__main__":
    main()
