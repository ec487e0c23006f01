"""The dashboard's pages on a large history, one request at a time, against a real
`execd serve`.

    python bench/seed.py --url sqlite:////tmp/big.db -n 1000000    # once
    python bench/pages.py --database sqlite:////tmp/big.db

Starts `execd serve` with its defaults on a database bench/seed.py filled, signs in to
the dashboard with an operator token of its "bench" project (as a browser does: the
sign-in form, then the session cookie), and requests each page R times in a row (after
two unmeasured ones; a slow page stops after 30 once it has taken `--seconds`), each
answer waited for before the next: the executions list (newest, filtered by status, by
action, by a day of `created`, by text in the result, and keyset pages deep in the
history), the part of it a live page fetches again, one execution and its live part,
the queue, the actions, one action with its run form, the flows, the rules, one rule
and one trigger (made by the run if the database has none), and the statistics over
24 hours, 7 days and 30 days. The time is the client's, from sending the request to
the last byte of the page: rendering on the server and the HTTP around it. Prints
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from reads import Seeded, operator_token, seeded, timed
from throughput import spawned

DAY = 86400.0


def plan(facts: Seeded, rng: random.Random) -> dict[str, list[str]]:
    span = facts.high - facts.low
    deep = [facts.low + int(span * rng.uniform(0.02, 0.1)) for _ in range(50)]

    def day(days_back: int) -> str:
        end = facts.newest - DAY * days_back
        moment = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(end - DAY))
        return urlencode(
            {"after": moment, "before": time.strftime("%Y-%m-%dT%H:%M", time.gmtime(end))}
        )

    ids = facts.some_ids
    return {
        "executions": ["/ui/executions"],
        "executions_failed": ["/ui/executions?status=failed"],
        "executions_completed_or_failed": ["/ui/executions?status=completed&status=failed"],
        "executions_action": ["/ui/executions?action=bench.action7"],
        "executions_one_day": [f"/ui/executions?{day(d)}" for d in (3, 10, 20)],
        "executions_result_text": ["/ui/executions?result=rows"],
        "executions_keyset_deep": [f"/ui/executions?below={b}" for b in deep],
        "executions_live_rows": ["/ui/executions?fragment=rows"],
        "execution": [f"/ui/executions/{i}" for i in ids],
        "execution_live": [f"/ui/executions/{i}?fragment=live" for i in ids],
        "queue": ["/ui/queue"],
        "actions": ["/ui/actions"],
        "action": ["/ui/actions/bench.action0"],
        "flows": ["/ui/flows"],
        "rules": ["/ui/rules"],
        "rule": ["/ui/rules/bench-report"],
        "trigger": ["/ui/triggers/bench-hourly"],
        "stats_24h": ["/ui/stats?window=24h"],
        "stats_7d": ["/ui/stats?window=7d"],
        "stats_30d": ["/ui/stats?window=30d"],
    }


async def sign_in(client: httpx.AsyncClient, token: str) -> None:
    form = await client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    if nonce is None:
        raise SystemExit("no sign-in form")
    signed = await client.post("/ui/sign-in", data={"nonce": nonce.group(1), "token": token})
    if signed.status_code != 303 or "execd_session" not in client.cookies:
        raise SystemExit(f"sign-in failed: {signed.status_code}")


async def a_rule(client: httpx.AsyncClient, token: str) -> None:
    """A timer trigger and a rule it fires, for their pages (once per database)."""
    auth = {"Authorization": f"Bearer {token}"}
    for path, body in (
        (
            "/api/v1/triggers",
            {"ref": "bench-hourly", "type": "timer", "config": {"interval": 3600}},
        ),
        (
            "/api/v1/rules",
            {"ref": "bench-report", "trigger": "bench-hourly", "action_ref": "core.noop"},
        ),
    ):
        answer = await client.post(path, json=body, headers=auth)
        if answer.status_code not in (201, 409):  # 409: made by an earlier run
            raise SystemExit(f"{path}: {answer.status_code} {answer.text}")


async def pages(
    url: str,
    token: str,
    paths: dict[str, list[str]],
    repeat: int,
    seconds: float,
    rng: random.Random,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await a_rule(client, token)
        await sign_in(client, token)

        async def get(path: str) -> tuple[int, int, str]:
            answer = await client.get(path)
            return answer.status_code, len(answer.content), answer.text

        return await timed(paths, repeat, seconds, rng, get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a database bench/seed.py filled")
    parser.add_argument("-r", "--repeat", type=int, default=100, help="requests per page")
    parser.add_argument(
        "--seconds", type=float, default=20, help="per page, after its first 30 requests"
    )
    parser.add_argument("--only", help="these pages only (names separated by commas)")
    args = parser.parse_args()
    backend = "sqlite" if args.database.startswith("sqlite") else "postgresql"
    rng = random.Random(13)
    facts = seeded(args.database, rng)
    paths = plan(facts, rng)
    if args.only:
        paths = {name: paths[name] for name in args.only.split(",")}
    with spawned(backend, {}, database_url=args.database) as server:
        token = asyncio.run(operator_token(server.url, server.token, facts.project_id))
        figures = asyncio.run(pages(server.url, token, paths, args.repeat, args.seconds, rng))
    worst = max(figures.items(), key=lambda item: item[1]["p99_ms"])
    print(json.dumps({"backend": backend, "pages": figures, "worst_p99": worst[0]}, indent=2))


if __name__ == "__main__":
    main()
