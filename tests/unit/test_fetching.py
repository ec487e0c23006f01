"""Which addresses fetches may reach, and how the operator's allow list reads."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from execd.config import Settings
from execd.fetching import AllowList, FetchRefused, check, internal_kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.100.100.200", "a shared (carrier-grade NAT) address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "a reserved address"),
        ("198.18.0.1", "a reserved address"),
        ("fd12:3456::1", "a private (unique local) address"),
        ("fc00::1", "a private (unique local) address"),
        ("2001:db8::1", "a reserved address"),
        ("4000::1", "a reserved address"),
        # IPv6 forms that carry an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::127.0.0.1", "a loopback address"),
        ("2002:a00:1::1", "a private address"),
        ("64:ff9b::10.0.0.1", "a private address"),
    ],
)
def test_internal_addresses_are_named(address: str, kind: str) -> None:
    assert internal_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_not_internal(address: str) -> None:
    assert internal_kind(ipaddress.ip_address(address)) is None


def _ips(*addresses: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(a) for a in addresses]


def test_a_name_with_one_internal_address_among_public_ones_is_refused() -> None:
    with pytest.raises(FetchRefused) as refused:
        check("mixed.example", _ips("1.1.1.1", "10.0.0.7"), AllowList())
    assert str(refused.value) == (
        "refused: mixed.example resolves to 10.0.0.7, a private address; "
        "allow it with EXECD_FETCH_ALLOW"
    )
    check("public.example", _ips("1.1.1.1", "2606:4700:4700::1111"), AllowList())


def test_the_allow_list_takes_networks_names_and_domains() -> None:
    allow = AllowList.parse(["10.0.0.0/8", "[::1]", "Metadata.Internal.", "*.svc.cluster"])
    check("10.2.3.4", _ips("10.2.3.4"), allow)
    check("::1", _ips("::1"), allow)
    check("::ffff:10.9.9.9", _ips("::ffff:10.9.9.9"), allow)
    check("metadata.internal", _ips("169.254.169.254"), allow)
    check("api.svc.cluster.", _ips("172.20.0.5"), allow)
    for host, address in [("127.0.0.1", "127.0.0.1"), ("svc.cluster", "172.20.0.5")]:
        with pytest.raises(FetchRefused):
            check(host, _ips(address), allow)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "http://10.0.0.1", "300.1.1.1", "a b"])
def test_a_malformed_allow_list_stops_the_settings(entry: str) -> None:
    with pytest.raises(ValidationError, match="EXECD_FETCH_ALLOW"):
        Settings(fetch_allow=f"127.0.0.1,{entry}")
