"""Outbound address policy: what is refused, why, and how to allow it."""

from __future__ import annotations

import pytest

from hookline.delivery import ssrf

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "shared"),
    ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254"),
    ("2002:a00:1::1", "6to4 form of 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1"),
    ("192.0.2.1", "192.0.2.1 is"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_ADDRESSES)
def test_non_public_addresses_are_refused_with_the_setting_to_change(address: str, kind: str) -> None:
    reason = ssrf.AddressPolicy([]).refusal(address)
    assert reason is not None
    assert kind in reason
    assert "set ssrf_allow_networks (env HOOKLINE_SSRF_ALLOW_NETWORKS='[" in reason


def test_loopback_refusal_reads_as_documented() -> None:
    assert ssrf.AddressPolicy([]).refusal("127.0.0.1") == (
        "127.0.0.1 is a loopback address; set ssrf_allow_networks "
        "(env HOOKLINE_SSRF_ALLOW_NETWORKS='[\"127.0.0.0/8\"]') to allow it"
    )


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert ssrf.AddressPolicy([]).refusal(address) is None


def test_allowed_networks_open_exceptions_and_nothing_else() -> None:
    policy = ssrf.AddressPolicy(["127.0.0.0/8", "10.1.0.0/16"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("127.8.9.10") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.1.2.3") is None
    assert policy.refusal("10.2.0.1") is not None
    assert policy.refusal("::1") is not None
    assert policy.refusal("169.254.169.254") is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_ip_literal_urls_are_refused(url: str) -> None:
    assert ssrf.AddressPolicy([]).check_literal_url(url) is not None


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://localhost:8080/", "https://93.184.215.14/x"])
def test_names_and_public_literals_pass_the_literal_check(url: str) -> None:
    # Names are checked on the addresses they resolve to, at connect time (GuardedResolver).
    assert ssrf.AddressPolicy([]).check_literal_url(url) is None


async def test_guarded_resolver_refuses_a_name_resolving_to_loopback() -> None:
    resolver = ssrf.GuardedResolver(ssrf.AddressPolicy([]))
    try:
        with pytest.raises(ssrf.DestinationRefused, match="loopback"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_guarded_resolver_keeps_allowed_addresses() -> None:
    resolver = ssrf.GuardedResolver(ssrf.AddressPolicy(["127.0.0.0/8"]))
    try:
        results = await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    assert results
    assert all(result["host"].startswith("127.") for result in results)
