"""Triggers, rules and enforcements: the use cases, webhook authentication, and the
loop (in every `execd serve`) that fires timers and follows the event log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import Any

import structlog

from execd.domain import rules as domain
from execd.domain.access import Principal, require
from execd.domain.criteria import check_criteria
from execd.domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
from execd.domain.rules import Enforcement, Rule, RuleError, RuleSpec, Trigger, TriggerSpec
from execd.engine.sealing import Sealer, SealError
from execd.store.rules import RuleStore

log = structlog.get_logger(__name__)
SIGNATURE_HEADER = "X-Execd-Signature"
MIN_SECRET = 16


def _checked(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except RuleError as exc:
        raise InvalidInput(str(exc)) from None


def signature(secret: str, body: bytes) -> str:
    """What a sender puts in X-Execd-Signature: sha256=<hex HMAC of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class RuleService:
    def __init__(self, store: RuleStore, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer  # HMAC secrets are stored sealed, opened to check a signature

    # -- triggers ---------------------------------------------------------------------

    def _trigger_spec(self, spec: TriggerSpec) -> TriggerSpec:
        _checked(domain.check_ref, "trigger", spec.ref)
        config = _checked(domain.normalise_config, spec.type, spec.config)
        return TriggerSpec(spec.ref, spec.type, spec.description, spec.enabled, config)

    @staticmethod
    def _secret(spec: TriggerSpec, given: str | None, has_one: bool) -> str | None:
        """The HMAC secret to store: the one given, or a new one for an HMAC webhook."""
        if given is not None:
            if spec.type != domain.WEBHOOK or spec.config.get("auth") != domain.HMAC:
                raise InvalidInput("Only a webhook with auth 'hmac' has a secret")
            if len(given) < MIN_SECRET:
                raise InvalidInput(f"A webhook secret has at least {MIN_SECRET} characters")
            return given
        if spec.type == domain.WEBHOOK and spec.config.get("auth") == domain.HMAC and not has_one:
            return secrets.token_urlsafe(32)
        return None

    async def create_trigger(
        self, caller: Principal, spec: TriggerSpec, secret: str | None
    ) -> tuple[Trigger, str | None]:
        """The trigger, and its HMAC secret if one was made (shown this once only)."""
        require(caller, "operator")
        spec = self._trigger_spec(spec)
        stored = self._secret(spec, secret, has_one=False)
        trigger = await self.store.create_trigger(
            caller.tenant_id, caller.project_id, spec, self._sealed(stored)
        )
        return trigger, (stored if secret is None else None)

    async def update_trigger(
        self, caller: Principal, ref: str, spec: TriggerSpec, secret: str | None
    ) -> tuple[Trigger, str | None]:
        require(caller, "operator")
        spec = self._trigger_spec(spec)
        current = await self.store.trigger(caller.project_id, ref)
        stored = self._secret(spec, secret, has_one=current.has_secret)
        trigger = await self.store.update_trigger(
            caller.project_id, ref, spec, self._sealed(stored)
        )
        return trigger, (stored if secret is None else None)

    async def patch_trigger(
        self, caller: Principal, ref: str, *, description: str | None, enabled: bool | None
    ) -> Trigger:
        """Describe, enable or disable a trigger; its config and secret stay. Refused to
        a viewer even when nothing would change."""
        require(caller, "operator")
        trigger = await self.store.trigger(caller.project_id, ref)
        if description is not None and description != trigger.description:
            spec = replace(TriggerSpec.of(trigger), description=description)
            trigger, _ = await self.update_trigger(caller, ref, spec, None)
        if enabled is not None and enabled != trigger.enabled:
            trigger = await self.set_trigger_enabled(caller, ref, enabled)
        return trigger

    async def set_trigger_enabled(self, caller: Principal, ref: str, enabled: bool) -> Trigger:
        """Enable or disable a trigger (its secret kept): a disabled one fires no rule,
        and a timer enabled again counts its schedule from now."""
        require(caller, "operator")
        current = await self.store.trigger(caller.project_id, ref)
        # Not checked again: a trigger saved under older checks can still be disabled.
        spec = replace(TriggerSpec.of(current), enabled=enabled)
        return await self.store.update_trigger(caller.project_id, ref, spec, None)

    def _sealed(self, secret: str | None) -> str | None:
        return None if secret is None else self.sealer.seal(secret)

    async def delete_trigger(self, caller: Principal, ref: str) -> None:
        require(caller, "operator")
        await self.store.delete_trigger(caller.project_id, ref)

    async def trigger(self, caller: Principal, ref: str) -> Trigger:
        return await self.store.trigger(caller.project_id, ref)

    async def triggers(self, caller: Principal) -> list[Trigger]:
        return await self.store.triggers(caller.project_id)

    # -- rules ------------------------------------------------------------------------------

    @staticmethod
    def _rule_spec(spec: RuleSpec, current: Rule | None = None) -> RuleSpec:
        """Check a definition. On an update, a ref or template kept as stored is not
        checked again, so a rule saved under older checks can still be disabled."""
        if current is None or spec.ref != current.ref:
            _checked(domain.check_ref, "rule", spec.ref)
        _checked(check_criteria, spec.criteria)
        if current is None or spec.parameters != current.parameters:
            _checked(domain.check_template, spec.parameters)
        return spec

    async def create_rule(self, caller: Principal, spec: RuleSpec) -> Rule:
        require(caller, "operator")
        return await self.store.create_rule(
            caller.tenant_id, caller.project_id, self._rule_spec(spec), caller.label
        )

    async def update_rule(self, caller: Principal, ref: str, spec: RuleSpec) -> Rule:
        require(caller, "operator")
        current = await self.store.rule(caller.project_id, ref)
        return await self.store.update_rule(caller.project_id, ref, self._rule_spec(spec, current))

    async def set_rule_enabled(self, caller: Principal, ref: str, enabled: bool) -> Rule:
        current = await self.store.rule(caller.project_id, ref)
        return await self.update_rule(caller, ref, replace(RuleSpec.of(current), enabled=enabled))

    async def delete_rule(self, caller: Principal, ref: str) -> None:
        require(caller, "operator")
        await self.store.delete_rule(caller.project_id, ref)

    async def rule(self, caller: Principal, ref: str) -> Rule:
        return await self.store.rule(caller.project_id, ref)

    async def rules(
        self,
        caller: Principal,
        *,
        trigger_ref: str | None,
        action_ref: str | None,
        enabled: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Rule], int]:
        return await self.store.rules(
            caller.project_id,
            trigger_ref=trigger_ref,
            action_ref=action_ref,
            enabled=enabled,
            limit=limit,
            offset=offset,
        )

    async def enforcements(
        self,
        caller: Principal,
        *,
        rule_ref: str | None,
        status: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Enforcement], int]:
        return await self.store.enforcements(
            caller.project_id, rule_ref=rule_ref, status=status, limit=limit, offset=offset
        )

    async def enforcement(self, caller: Principal, enforcement_id: int) -> Enforcement:
        return await self.store.enforcement(caller.project_id, enforcement_id)

    # -- webhooks ---------------------------------------------------------------------------

    async def webhook(
        self,
        caller: Principal | None,
        ref: str,
        body: bytes,
        sig: str | None,
        payload: Any,
        project_id: str | None = None,
    ) -> tuple[Trigger, list[Enforcement]]:
        """Fire the webhook trigger `ref`. A caller with a token fires its project's
        trigger; a call without one must carry the HMAC signature of a trigger's secret.
        Unknown triggers and bad signatures get the same answer. `project_id` picks the
        project when the same ref and secret are used in several."""
        if caller is not None:
            require(caller, "operator")
            found = await self.store.webhooks(ref, caller.project_id)
            if not found:
                try:  # a trigger of another type: the caller may see its project's
                    other = await self.store.trigger(caller.project_id, ref)
                except NotFound:
                    raise NotFound(f"Webhook trigger {ref} not found", ref=ref) from None
                raise Conflict(
                    f"Trigger {ref} is a {other.type} trigger: only webhook triggers are "
                    "fired by a call",
                    ref=ref,
                )
            trigger, _ = found[0]
        else:
            if not sig:
                raise Unauthorized(
                    f"Sign the body ({SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256>) "
                    "or send a bearer token"
                )
            signed = self._signed(await self.store.webhooks(ref, project_id), body, sig)
            if len(signed) > 1:  # the same ref and secret in several projects
                raise Conflict(
                    "The signature matches webhook triggers of several projects: "
                    "add ?project=<project id> to the URL"
                )
            trigger = signed[0]
        if not trigger.enabled:
            raise Conflict(f"Trigger {ref} is disabled", ref=ref)
        return trigger, await self.store.fire(trigger, payload)

    def _signed(
        self, candidates: list[tuple[Trigger, str | None]], body: bytes, sig: str
    ) -> list[Trigger]:
        """The HMAC webhooks among `candidates` whose secret signs `body` as `sig` says."""
        given = sig.strip().encode("utf-8", "replace")
        signed: list[Trigger] = []
        unopened = False
        for trigger, stored in candidates:
            if stored is None or trigger.config.get("auth") != domain.HMAC:
                continue
            try:
                secret = str(self.sealer.open(stored))
            except SealError as exc:
                log.error("webhook_secret_unopened", trigger_id=trigger.id, error=exc.message)
                unopened = True
                continue
            if hmac.compare_digest(signature(secret, body).encode(), given):
                signed.append(trigger)
        if not signed and unopened:
            raise SealError(
                "This node cannot check the signature: it lacks the key that sealed the "
                "webhook's secret (see its log); every node needs the same secret keys"
            )
        if not signed:
            raise Unauthorized("The signature does not match any webhook trigger")
        return signed


class RuleEngine:
    """Fires due timers and follows the event log for execution triggers. Runs in every
    `execd serve`: the store's compare-and-set and cursor lock make each firing happen
    once, however many run."""

    def __init__(self, store: RuleStore, *, poll_seconds: float) -> None:
        self.store = store
        self.poll_seconds = poll_seconds

    async def tick(self) -> tuple[int, float | None]:
        """One round: due timers, then the log. Returns the events read (any: go again
        at once) and the seconds until the next timer is due."""
        due_now, next_due = await self.store.timers()
        for timer in due_now:
            where = {"trigger": timer.ref, "project": timer.project_id}
            try:
                fired = await self.store.fire_timer(timer.id, timer.due)
            except Exception as exc:  # one timer's trouble must not hold up the others
                log.warning("timer_error", **where, error=str(exc))
                continue
            if fired:  # a timer no enabled rule listens to fires quietly
                rules = sorted({e.rule_ref for e in fired})
                log.info("timer_fired", **where, rules=rules, enforcements=len(fired))
        return await self.store.follow(), next_due

    async def run(self) -> None:
        while True:
            try:
                await self.store.start_following()
                break
            except Exception as exc:
                log.warning("rules_error", error=str(exc))
                await asyncio.sleep(self.poll_seconds)
        while True:
            read, next_due = 0, None
            try:
                read, next_due = await self.tick()
            except Exception as exc:
                log.warning("rules_error", error=str(exc))
            if read:
                await asyncio.sleep(0)
                continue
            wait = self.poll_seconds if next_due is None else min(self.poll_seconds, next_due)
            await asyncio.sleep(wait)
