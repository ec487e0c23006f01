"""Settings read from the environment: what is accepted, and what it resolves to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from execd.config import Settings


def test_links_begin_with_the_public_url_else_the_bind_address() -> None:
    assert Settings(port=9000).public_base == "http://127.0.0.1:9000"
    assert Settings(host="::1", port=9000).public_base == "http://[::1]:9000"
    assert Settings(host="0.0.0.0").public_base.startswith("http://")
    public = Settings(public_url=" https://jobs.example.com/execd/ ")
    assert public.public_base == "https://jobs.example.com/execd"


@pytest.mark.parametrize(
    "url",
    ["jobs.example.com", "ftp://jobs.example.com", "https://", "https://h/?a=1", "https://u@h/"],
)
def test_a_public_url_is_an_http_url_with_a_host_and_nothing_else(url: str) -> None:
    with pytest.raises(ValidationError, match="EXECD_PUBLIC_URL"):
        Settings(public_url=url)
