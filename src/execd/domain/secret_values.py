"""Where secret values sit, and how they are hidden from view.

Secret parameter values are stored sealed (see engine/sealing.py) in three places: an
execution's parameters (the names its `secrets` lists), a flow plan's parameters and
every step's prepared run inside it, and a job's notification webhook URL. The
functions here find those places and apply a function to each value, so sealing,
opening and re-sealing share one walk. The rest masks what is shown: the parts of a
URL that carry credentials, and the parts of a rule's payload that it maps into
secret parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from execd.domain import templates
from execd.domain.actions import SECRET_MASK

Change = Callable[[Any], Any]


def map_values(
    parameters: dict[str, Any], names: Iterable[str] | None, change: Change
) -> dict[str, Any]:
    """`parameters` with `change` applied to the value of each of `names` present."""
    wanted = [name for name in names or () if name in parameters]
    if not wanted:
        return parameters
    return {**parameters, **{name: change(parameters[name]) for name in wanted}}


def map_plan(plan: dict[str, Any], change: Change) -> dict[str, Any]:
    """A flow plan with `change` applied to every secret value in it: the flow's own
    parameters that feed secret step parameters, each step's secret parameters, and
    the same in every sub-flow's plan."""
    steps = []
    for step in plan.get("steps") or []:
        if isinstance(step.get("run"), dict):
            run = step["run"]
            step = {**step, "run": {**run, "parameters": _mapped(run, change)}}
        elif isinstance(step.get("flow"), dict):
            step = {**step, "flow": map_plan(step["flow"], change)}
        steps.append(step)
    return {**plan, "parameters": _mapped(plan, change), "steps": steps}


def _mapped(holder: dict[str, Any], change: Change) -> dict[str, Any]:
    return map_values(holder.get("parameters") or {}, holder.get("secrets"), change)


# -- URLs --------------------------------------------------------------------------------

# A path segment this long, with letters and digits, is taken for a token (chat
# webhooks put theirs in the path); masking a harmless id as well costs nothing.
_TOKEN_SEGMENT = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9])[^/]{16,}")


def mask_url(url: str) -> tuple[str, list[str]]:
    """The URL as it may be shown, and the pieces hidden from it: the password of
    user:password@ (or a user alone, which is a token), every query value, the
    fragment, and path segments that look like tokens."""
    parts = urlsplit(url)
    hidden: list[str] = []

    def hide(piece: str) -> str:
        hidden.append(piece)
        return SECRET_MASK

    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        userinfo = f"{user}:{hide(password)}" if colon and password else hide(userinfo)
        netloc = f"{userinfo}@{host}"
    path = "/".join(
        hide(segment) if _TOKEN_SEGMENT.fullmatch(segment) else segment
        for segment in parts.path.split("/")
    )
    query = "&".join(
        f"{quote(name, safe='')}={hide(value)}" if value else quote(name, safe="")
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    fragment = hide(parts.fragment) if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment)), hidden


def scrub(text: str, hidden: Collection[str]) -> str:
    """`text` (an error message, say) with every hidden piece masked, as given and as
    a client would percent-encode it."""
    for piece in sorted(hidden, key=len, reverse=True):
        for form in {piece, quote(piece, safe="")}:
            text = text.replace(form, SECRET_MASK)
    return text


# -- rule payloads -----------------------------------------------------------------------


def payload_paths(template: dict[str, Any], names: Collection[str] | None) -> set[str]:
    """The payload paths a rule's parameter template maps into the parameters `names`
    (every parameter when `names` is None: the action is not known)."""
    used: set[str] = set()
    for name, value in template.items():
        if names is None or name in names:
            used |= templates.paths_used(value)
    return {path for path in used if path == "payload" or path.startswith("payload.")}


def mask_payload(payload: Any, paths: Iterable[str]) -> Any:
    """`payload` with the value at each path (`payload.a.0.b`) masked, a copy."""
    for path in sorted(paths):
        parts = path.split(".")[1:]
        payload = _masked(payload, parts)
    return payload


def _masked(value: Any, parts: list[str]) -> Any:
    if not parts:
        return SECRET_MASK
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _masked(value[head], rest)}
    if isinstance(value, list) and templates.is_index(head) and int(head) < len(value):
        index = int(head)
        return [*value[:index], _masked(value[index], rest), *value[index + 1 :]]
    return value
