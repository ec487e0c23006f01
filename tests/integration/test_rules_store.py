"""The rule store on both backends: one rule that cannot run (even for a reason the
database raises) fails its own enforcement; the firing, and every other rule, go on."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from execd.domain.actions import Action
from execd.domain.rules import RuleSpec, TriggerSpec
from execd.engine.accounts import AccountService
from execd.engine.actions import ActionService
from execd.engine.sealing import Sealer, new_key
from execd.store.accounts import Accounts
from execd.store.catalog import Catalog
from execd.store.database import Database
from execd.store.queue import Queue
from execd.store.rules import RuleStore
from execd.store.schema import executions

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]


def test_a_failing_rule_fails_alone(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        project, _ = await AccountService(Accounts(db)).bootstrap(
            Path(tempfile.gettempdir()), "execd_rules_test_token"
        )
        actions = ActionService(Catalog(db), Sealer([new_key()]))

        def prepare(action: Action, parameters: dict[str, Any]) -> dict[str, Any]:
            poisoned = parameters.pop("poison", False)
            prepared = actions.prepare(action, parameters)
            # What a database refusal does (a NOT NULL column left empty): the
            # savepoint rolls back this rule's part only.
            return dict(prepared, runner=None) if poisoned else prepared

        store = RuleStore(db, Queue(db), prepare)
        tenant, proj = project.tenant_id, project.id
        trigger = await store.create_trigger(
            tenant, proj, TriggerSpec("hook", "webhook", config={"auth": "token"}), None
        )
        for ref, params in (("a-good", {"message": "1"}), ("b-poisoned", {"poison": True}),
                            ("c-good", {"message": "2"})):  # fmt: skip
            await store.create_rule(
                tenant, proj, RuleSpec(ref, "hook", "core.echo", parameters=params), None
            )
        fired = await store.fire(trigger, {"x": 1})
        by_rule = {e.rule_ref: e for e in fired}
        assert by_rule["a-good"].status == "succeeded" and by_rule["c-good"].status == "succeeded"
        assert by_rule["b-poisoned"].status == "failed"
        assert by_rule["b-poisoned"].execution_ids == []
        assert by_rule["b-poisoned"].error == "Not run: IntegrityError"
        count = await db.read(
            lambda conn: conn.execute(select(func.count()).select_from(executions)).scalar_one()
        )
        assert count == 2

    with_db(scenario)
