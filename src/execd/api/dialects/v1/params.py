"""Request parameters v1 routes share: the page, its size, a definition's ref in the
path, and a PUT's ref.

(No `from __future__ import annotations` here: the size's parameters are annotated
with values of the function that makes it, which FastAPI must see as objects.)"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query

from execd.domain.errors import Conflict

LARGEST = 10**9  # beyond any page or size a client means

PageNumber = Annotated[int, Query(ge=1, le=LARGEST, description="Page number, from 1")]
Ref = Annotated[str, Path(min_length=1, max_length=200)]  # a trigger's or a rule's


def _sized(default: int, most: int) -> Callable[..., Awaitable[int]]:
    """A page size: `per_page`, or `page_size` as some clients name it; above `most` it
    counts as `most` (the document's "max" is the most a page holds, not a refusal)."""
    described = f"Items per page, {default} by default; above {most} counts as {most}"

    async def size(
        per_page: Annotated[int | None, Query(ge=1, le=LARGEST, description=described)] = None,
        page_size: Annotated[
            int | None, Query(ge=1, le=LARGEST, description="The same as per_page")
        ] = None,
    ) -> int:
        given = per_page if per_page is not None else page_size
        return default if given is None else min(given, most)

    return size


def per_page(default: int, most: int) -> Any:
    """`Annotated[int, per_page(20, 100)]` in a route: its page size."""
    return Depends(_sized(default, most))


PerPage = Annotated[int, per_page(20, 100)]


def same_ref(kind: str, path: str, body: str) -> None:
    """A PUT replaces the definition its path names: the body's ref is that one (a
    definition is not renamed in passing; a webhook's URL and rules name it). Another
    ref conflicts with what the path names: 409."""
    if body != path:
        raise Conflict(
            f"The {kind}'s ref is {path!r}, the body says {body!r}: a {kind} keeps its ref "
            f"(create the new one, then delete the old)"
        )
