"""Which addresses the URLs that tenants choose may reach (the `http` runner, job
notification webhooks): public ones only, unless the operator allows more.

Loopback, private, shared, link-local (cloud metadata), multicast, reserved and
unspecified addresses are refused, whether a URL names one or its host resolves to one,
unless `EXECD_FETCH_ALLOW` lists the network or the host name. The check is made where
the connection is made: the host is resolved once, every address is checked, and the
socket connects to a checked address. So a name that answers differently a moment
later (DNS rebinding) gains nothing, every redirect hop is checked as it connects, and
TLS still verifies the URL's own host name. Nothing is sent to a refused address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

SETTING = "EXECD_FETCH_ALLOW"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The first network holding an address names its kind.
_INTERNAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a reserved address"),
        ("192.88.99.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a reserved address"),
        ("198.51.100.0/24", "a reserved address"),
        ("203.0.113.0/24", "a reserved address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a private address"),
        ("100::/64", "a reserved address"),
        ("2001::/23", "a reserved address"),
        ("2001:db8::/32", "a reserved address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private (site-local) address"),
        ("ff00::/8", "a multicast address"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# IPv6 forms that carry an IPv4 address a packet may end up at.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


class FetchRefused(Exception):
    """A URL's host is, or resolves to, an address that fetches may not reach."""


def internal_kind(ip: Address) -> str | None:
    """What makes an address internal ("a loopback address"), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        return internal_kind(inner)
    for network, kind in _INTERNAL:
        if ip in network:
            return kind
    if (ip.version == 6 and ip not in _GLOBAL_UNICAST) or not ip.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AllowList:
    """What fetches may reach although it is internal: networks, host names, and every
    name under a domain given as `*.example.internal`."""

    networks: tuple[Network, ...] = ()
    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".example.internal"

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        networks: list[Network] = []
        names: set[str] = set()
        domains: list[str] = []
        for entry in entries:
            text = entry.strip().lower()
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = text.rstrip(".").removeprefix("*.")
            if not _HOST_NAME.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
                raise ValueError(
                    f"{SETTING}: {entry!r} is not an address, a network (CIDR), a host "
                    "name or *.domain"
                )
            if text.startswith("*."):
                domains.append("." + name)
            else:
                names.add(name)
        return cls(tuple(networks), frozenset(names), tuple(domains))

    def allows_name(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or name.endswith(self.domains)

    def allows_address(self, ip: Address) -> bool:
        forms: list[Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
            forms.append(inner)
        return any(form in network for form in forms for network in self.networks)


def check(host: str, addresses: Iterable[Address], allow: AllowList) -> None:
    """Raise FetchRefused unless every address of `host` may be reached."""
    if allow.allows_name(host):
        return
    for ip in addresses:
        kind = internal_kind(ip)
        if kind is None or allow.allows_address(ip):
            continue
        where = f"{host} is {kind}" if _literal(host) == ip else f"{host} resolves to {ip}, {kind}"
        raise FetchRefused(f"refused: {where}; allow it with {SETTING}")


def client(allow: AllowList, **options: Any) -> httpx.AsyncClient:
    """An httpx client that connects only where `allow` lets it. The environment's proxy
    settings are not used: a proxy would fetch any address it was asked for."""
    return httpx.AsyncClient(transport=_CheckedTransport(allow), trust_env=False, **options)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow: AllowList) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend of its own, so its pool is replaced by one
        # that has ours; the transport still maps requests, responses and errors.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            network_backend=_CheckedBackend(allow),
        )


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        check(host, addresses, self.allow)
        failure = httpcore.ConnectError(f"no address of {host} answered")
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[Address]:
    try:
        with anyio.fail_after(timeout):
            found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
