"""A token's last use is written at most once a minute, whichever node asks: the
database checks the condition (both backends)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import update

from execd.engine.accounts import AccountService, hash_token
from execd.store.accounts import Accounts
from execd.store.database import Database
from execd.store.schema import tokens

TOKEN = "execd_token_use_test_0123456789"


def test_last_use_is_written_once_a_minute_by_any_number_of_nodes(
    with_db: Callable[[Callable[[Database], Awaitable[None]]], None], tmp_path: Path
) -> None:
    async def scenario(db: Database) -> None:
        accounts = Accounts(db)
        await AccountService(accounts).bootstrap(tmp_path, TOKEN)
        record = await accounts.token_by_hash(hash_token(TOKEN))
        assert record is not None and record.last_used is None

        await accounts.mark_used(record.id, 60)
        first = await accounts.token(record.id)
        assert first is not None and first.last_used is not None
        # Another node asking within the minute (its own hint said the use was old).
        await accounts.mark_used(record.id, 60)
        again = await accounts.token(record.id)
        assert again is not None and again.last_used == first.last_used

        # A minute later (moved back rather than waited for), the next use is written.
        await db.write(
            lambda conn: conn.execute(
                update(tokens)
                .where(tokens.c.id == record.id)
                .values(last_used=first.last_used - 61)
            )
        )
        await accounts.mark_used(record.id, 60)
        later = await accounts.token(record.id)
        assert later is not None and later.last_used is not None
        assert later.last_used >= first.last_used

        # Through authentication: a fresh node's lookup records nothing new either.
        node = AccountService(accounts, cache_seconds=0)
        for _ in range(3):
            await node.authenticate(f"Bearer {TOKEN}")
        assert (await accounts.token(record.id)) == later

    with_db(scenario)
