"""Outbound safety: refuse deliveries to loopback, private, link-local and other non-public addresses.

Checked twice: on IP-literal URLs (aiohttp connects to those without asking the resolver), and on every
address a host name resolves to, at connect time (`GuardedResolver`), so DNS rebinding cannot get round it.
An allow-list of networks (setting `ssrf_allow_networks`) opens exceptions, e.g. 127.0.0.0/8 for tests.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix, embeds an IPv4 address
LITERAL_CACHE_MAX_ENTRIES = 10_000
ALLOW_SETTING_HINT = "set ssrf_allow_networks (env HOOKLINE_SSRF_ALLOW_NETWORKS='[\"{network}\"]') to allow it"


class DestinationRefused(OSError):
    """The destination address is not allowed by the outbound address policy."""


def _kind_of_address(address: IpAddress) -> str | None:
    """What makes an address non-public ("a loopback address"), or None for a public one."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        if isinstance(address, ipaddress.IPv4Address):
            return "a link-local address (where cloud metadata services live)"
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: IpAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), with the form's name."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "an IPv4-mapped form"
    if address.sixtofour is not None:
        return address.sixtofour, "a 6to4 form"
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64 form"
    return None


def _suggested_network(address: IpAddress) -> str:
    if isinstance(address, ipaddress.IPv4Address) and address.is_loopback:
        return "127.0.0.0/8"
    return str(ipaddress.ip_network(address))


class AddressPolicy:
    """Which destination addresses deliveries may connect to: public ones, plus the allowed networks."""

    def __init__(self, allow_networks: Sequence[str] = ()) -> None:
        self.allow_networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in allow_networks
        )
        self._literal_refusals: dict[str, str | None] = {}

    def is_allowed_explicitly(self, address: IpAddress) -> bool:
        """Whether the address lies in one of the allowed networks."""
        return any(address in network for network in self.allow_networks)

    def refusal(self, ip: str | IpAddress) -> str | None:
        """Why deliveries may not connect to this address (naming the setting that would allow it), or None."""
        try:
            address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
        except ValueError:
            return f"{ip!r} is not an IP address"
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if self.is_allowed_explicitly(address) or (embedded and self.is_allowed_explicitly(embedded[0])):
            return None
        if embedded is not None:
            inner, form = embedded
            inner_kind = _kind_of_address(inner)
            if inner_kind is not None:
                return f"{address} is {form} of {inner}, {inner_kind}; " + ALLOW_SETTING_HINT.format(
                    network=_suggested_network(inner)
                )
        kind = _kind_of_address(address)
        if kind is None:
            return None
        return f"{address} is {kind}; " + ALLOW_SETTING_HINT.format(network=_suggested_network(address))

    def check_literal_url(self, url: str) -> str | None:
        """Why a URL whose host is an IP literal may not be delivered to, or None (names are checked on connect)."""
        try:
            return self._literal_refusals[url]
        except KeyError:
            pass
        host = _literal_host(url)
        refusal = None if host is None else self.refusal(host)
        if len(self._literal_refusals) >= LITERAL_CACHE_MAX_ENTRIES:
            self._literal_refusals.clear()
        self._literal_refusals[url] = refusal
        return refusal


def _literal_host(url: str) -> IpAddress | None:
    """The URL's host when it is an IP literal, else None."""
    try:
        hostname = urlsplit(url).hostname
    except ValueError:
        return None
    if not hostname:
        return None
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's threaded resolver and keeps only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of `host`; raises DestinationRefused when it resolves to none."""
        resolved = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusals: list[str] = []
        for result in resolved:
            refusal = self.policy.refusal(result["host"])
            if refusal is None:
                allowed.append(result)
            else:
                refusals.append(refusal)
        if not allowed:
            reason = refusals[0] if refusals else "it resolved to no address"
            raise DestinationRefused(f"{host} resolves to a refused address: {reason}")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()
