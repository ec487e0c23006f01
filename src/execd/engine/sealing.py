"""Secrets sealed at rest: secret parameter values, HMAC trigger secrets and the
credentials of job notification webhooks are stored encrypted with a key kept outside
the database, and opened only where the value is needed (the worker, right before a
run; the webhook route, to check a signature; the notifier, to send).

A sealed value is text: `execd-sealed:v1:<key id>:<Fernet token of the JSON value>`.
Fernet (AES-128-CBC with HMAC-SHA256) is authenticated: a changed value does not open.
The key id (8 hex digits of the SHA-256 of the key) names the key that sealed it, so a
node without that key says which one it lacks, and rotation leaves values sealed with
the current key alone. Anything without the prefix is a value stored in plain text by
an older version: it is used as it is until `execd secrets rotate` seals it.

The keys come from EXECD_SECRET_KEY (several, comma-separated, for rotation: the first
seals, all open), else from the file `secret-key` in the data directory, made (mode
0600) with a new key on first start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog
from cryptography.fernet import Fernet, InvalidToken

from execd.data_dir import made_once
from execd.domain.actions import secret_names
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.errors import Unavailable
from execd.domain.secret_values import (
    map_plan,
    map_values,
    mask_payload,
    mask_url,
    payload_paths,
)
from execd.store.sealed import SealedStore

PREFIX = "execd-sealed:v1:"
KEY_FILE = "secret-key"
KEY_VARIABLE = "EXECD_SECRET_KEY"
log = structlog.get_logger(__name__)


class SealError(Unavailable):
    """A sealed value this node cannot open, or keys it cannot use."""

    code = "SECRET_UNAVAILABLE"


def new_key() -> str:
    return Fernet.generate_key().decode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_of(value: str) -> str:
    """The id of the key that sealed `value`."""
    return value[len(PREFIX) :].split(":", 1)[0]


def _key_id(key: str) -> str:
    return hashlib.sha256(base64.urlsafe_b64decode(key)).hexdigest()[:8]


def parse_keys(text: str, source: str) -> list[str]:
    """The keys in `text` (separated by commas or white space), checked."""
    keys = [k for k in re.split(r"[,\s]+", text) if k]
    if not keys:
        raise SealError(f"{source} holds no key")
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise SealError(
                f"{source}: each key is 32 random bytes in URL-safe base64, 44 characters "
                "(make one with `execd secrets new-key`)"
            )
    return keys


def read_keys(secret_key: str | None, data_dir: Path, *, create: bool) -> tuple[list[str], str]:
    """The keys and where they came from: EXECD_SECRET_KEY if set, else the key file
    in the data directory, made with a new key if `create` and it does not exist."""
    if secret_key:
        return parse_keys(secret_key, KEY_VARIABLE), KEY_VARIABLE
    path = data_dir / KEY_FILE
    if not create and not path.exists():
        raise SealError(
            f"No secret key: set {KEY_VARIABLE}, or run where {path} (made by the first "
            "`execd serve`) is"
        )
    return parse_keys(made_once(path, new_key), str(path)), str(path)


class Sealer:
    """Seals and opens values with the keys it was given (`load`)."""

    def __init__(self, keys: Iterable[str] = (), source: str = "the given keys") -> None:
        self._ids: list[str] = []
        self._fernets: dict[str, Fernet] = {}
        self.source = source
        if keys:
            self.load(list(keys), source)

    def load(self, keys: list[str], source: str) -> None:
        self._ids = [_key_id(k) for k in keys]
        self._fernets = {_key_id(k): Fernet(k) for k in keys}
        self.source = source

    @property
    def key_ids(self) -> list[str]:
        """The ids of the keys, the sealing one first."""
        return list(self._ids)

    def seal(self, value: Any) -> str:
        if not self._ids:
            raise SealError("No secret key has been loaded")
        current = self._ids[0]
        token = self._fernets[current].encrypt(orjson.dumps(value)).decode()
        return f"{PREFIX}{current}:{token}"

    def open(self, value: Any) -> Any:
        """The value sealed in `value`; a value in plain text (from an older version)
        is returned as it is."""
        if not is_sealed(value):
            return value
        key, _, token = value[len(PREFIX) :].partition(":")
        fernet = self._fernets.get(key)
        if fernet is None:
            raise SealError(
                f"it was sealed with key {key}, which this node does not have (its keys: "
                f"{', '.join(self._ids) or 'none'}, from {self.source}); every node needs "
                f"the same keys ({KEY_VARIABLE})"
            )
        try:
            return orjson.loads(fernet.decrypt(token.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            raise SealError(f"it does not open with key {key}: it was changed or damaged") from None

    def is_current(self, value: Any) -> bool:
        return is_sealed(value) and bool(self._ids) and key_of(value) == self._ids[0]

    def seal_values(
        self, parameters: dict[str, Any], names: Iterable[str] | None
    ) -> dict[str, Any]:
        return map_values(parameters, names, self.seal)

    def open_values(
        self, parameters: dict[str, Any], names: Iterable[str] | None
    ) -> dict[str, Any]:
        """The parameters with the values of `names` opened; a SealError names the
        parameter that cannot be opened (never its value)."""
        opened = dict(parameters)
        for name in names or ():
            if name in parameters:
                try:
                    opened[name] = self.open(parameters[name])
                except SealError as exc:
                    raise SealError(
                        f"The secret parameter {name!r} cannot be opened: {exc.message}"
                    ) from None
        return opened

    def seal_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job's details with the credentials of its notification webhook URL masked,
        and the whole URL sealed under "sealed" (when there was anything to hide)."""
        notifications = job.get("notifications") or {}
        url = notifications.get("webhookUrl")
        if not isinstance(url, str) or "webhookUrl" in (job.get("sealed") or {}):
            return job
        shown, hidden = mask_url(url)
        if not hidden:
            return job
        return {
            **job,
            "notifications": {**notifications, "webhookUrl": shown},
            "sealed": {**(job.get("sealed") or {}), "webhookUrl": self.seal(url)},
        }


def sealed_webhook_url(job: dict[str, Any] | None) -> str | None:
    sealed = (job or {}).get("sealed") or {}
    url = sealed.get("webhookUrl")
    return url if isinstance(url, str) else None


# -- checks at start and rotation ------------------------------------------------------------


@dataclass
class Rotation:
    """What `execd secrets rotate` did, in values."""

    current: int = 0  # already sealed with the first key: left alone
    resealed: int = 0  # sealed with another key: sealed again with the first
    plain: int = 0  # in plain text (from an older version): sealed now
    masked: int = 0  # rule payloads (from an older version) masked
    failed: int = 0  # sealed with a key this node does not have, or damaged
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.resealed + self.plain + self.masked


class _Resealer:
    """Seals every secret value in a row with the first key; counts what it does."""

    def __init__(self, sealer: Sealer, report: Rotation) -> None:
        self.sealer = sealer
        self.report = report

    def value(self, value: Any) -> Any:
        if self.sealer.is_current(value):
            self.report.current += 1
            return value
        if is_sealed(value):
            try:
                opened = self.sealer.open(value)
            except SealError as exc:
                self.report.failed += 1
                if exc.message not in self.report.problems:
                    self.report.problems.append(exc.message)
                return value
            self.report.resealed += 1
        else:
            opened = value
            self.report.plain += 1
        return self.sealer.seal(opened)

    def execution(self, row: dict[str, Any]) -> dict[str, Any]:
        changed: dict[str, Any] = {}
        parameters = map_values(row["parameters"] or {}, row["secrets"], self.value)
        if parameters != row["parameters"]:
            changed["parameters"] = parameters
        if isinstance(row["plan"], dict):
            plan = map_plan(row["plan"], self.value)
            if plan != row["plan"]:
                changed["plan"] = plan
        if isinstance(row["job"], dict):
            job = row["job"]
            sealed = sealed_webhook_url(job)
            if sealed is not None:
                job = {**job, "sealed": {**job["sealed"], "webhookUrl": self.value(sealed)}}
            else:
                job = self.sealer.seal_job(job)
                self.report.plain += job is not row["job"]
            if job != row["job"]:
                changed["job"] = job
        return changed

    def trigger(self, row: dict[str, Any]) -> dict[str, Any]:
        secret = self.value(row["secret"])
        return {"secret": secret} if secret != row["secret"] else {}

    def notification(self, row: dict[str, Any]) -> dict[str, Any]:
        shown, _ = mask_url(row["target"])
        if shown == row["target"]:
            return {}
        self.report.masked += 1
        return {"target": shown}

    def enforcement(self, row: dict[str, Any]) -> dict[str, Any]:
        template = row["rule_parameters"]
        if not isinstance(template, dict):
            return {}  # its rule is gone: what it mapped is not known
        if row["action_ref"] in CORE_ACTIONS:
            names: frozenset[str] | None = secret_names(CORE_ACTIONS[row["action_ref"]].parameters)
        elif isinstance(row["action_parameters"], dict):
            names = secret_names(row["action_parameters"])
        else:
            names = None  # its action is gone: every mapped field may be secret
        payload = mask_payload(row["payload"], payload_paths(template, names))
        if payload == row["payload"]:
            return {}
        self.report.masked += 1
        return {"payload": payload}


async def rotate(store: SealedStore, sealer: Sealer) -> Rotation:
    """Seal every secret value in the database with the first key: values sealed with
    an older key and values left in plain text by an older version. Rule payloads
    stored before masking are masked. Safe to run while servers run, and again."""
    report = Rotation()
    resealer = _Resealer(sealer, report)
    await store.rewrite_executions(resealer.execution)
    await store.rewrite_triggers(resealer.trigger)
    await store.rewrite_notifications(resealer.notification)
    await store.rewrite_enforcements(resealer.enforcement)
    await store.checkpoint()
    return report


async def check_keys(store: SealedStore, sealer: Sealer) -> list[str]:
    """What to warn about at start, from a sample of what is stored: values sealed
    with keys this node does not have, values still in plain text."""
    executions, trigger_secrets = await store.sample()
    found: list[Any] = list(trigger_secrets)

    def keep(value: Any) -> Any:
        found.append(value)
        return value

    for row in executions:
        map_values(row["parameters"] or {}, row["secrets"], keep)
        if isinstance(row["plan"], dict):
            map_plan(row["plan"], keep)
    unknown = sorted({key_of(v) for v in found if is_sealed(v)} - set(sealer.key_ids))
    plain = sum(1 for v in found if not is_sealed(v))
    warnings = []
    if unknown:
        warnings.append(
            f"secret values in the database were sealed with key(s) {', '.join(unknown)}, "
            f"which this node does not have (its keys: {', '.join(sealer.key_ids)}, from "
            f"{sealer.source}): what needs them will fail. Every node needs the same "
            f"keys: set the same {KEY_VARIABLE} on every node"
        )
    if plain:
        warnings.append(
            f"secret values stored by an older version are still in plain text ({plain} "
            "seen in a sample): run `execd secrets rotate` to seal them"
        )
    return warnings
