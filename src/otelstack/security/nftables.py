"""Render the flows matrix to an nftables ruleset for one VM.

The ruleset is one table, ``inet otelstack``, replaced atomically: the file declares, deletes and
re-creates the table, and ``nft -f`` applies it in one transaction. Its input chain accepts loopback and
established/related traffic, accepts each inbound flow of the host's tiers from named sets of the source
addresses (with a counter and the flow's name as comment), and drops, with counters, every other packet
to a port the host's tiers listen on. Other ports (SSH, the host's unrelated services) are left to the
host's other rules: the chain's policy is accept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from otelstack import __version__
from otelstack.security import flows

TABLE = "otelstack"
# Before Debian's `inet filter` table (priority filter = 0), so its accept rules cannot let a platform port
# through; a drop in any base chain is final, so the host's own drop rules still apply after ours.
PRIORITY = "filter - 1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FirewallError(flows.FlowsError):
    """Input to the nftables renderer is invalid (a role, a source or an address)."""


def _networks(role: str, raw: object) -> tuple[list[Network], list[Network]]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise FirewallError(
            f"firewall sources for {role!r}: expected a list of addresses or networks, got {type(raw).__name__} {raw!r}"
        )
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for item in raw:
        text = str(item).strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise FirewallError(
                f"firewall sources for {role!r}: {item!r} is not an IP address or network "
                "(e.g. 10.0.0.5, 10.0.0.0/24, fd00::5)"
            ) from None
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    # Collapsed: no duplicates and no overlapping intervals (nft rejects overlaps in an interval set).
    return list(ipaddress.collapse_addresses(v4)), list(ipaddress.collapse_addresses(v6))


def _element(network: Network) -> str:
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _set_name(role: str, family: str) -> str:
    return f"{role}_{family}"


def render(roles: Sequence[str], sources: Mapping[str, object], *, host: str = "") -> str:
    """The ruleset for a host holding `roles` (tiers), `sources` mapping a source role to its addresses.

    A flow whose source has no address gets no accept rule (its ports stay denied). An unknown role in
    `roles` or `sources`, a source that is not a list, or a malformed address raises FirewallError naming
    it; nothing is rendered then. The output depends only on the inputs (sorted, collapsed addresses).
    """
    if isinstance(roles, str):
        raise FirewallError(f"firewall roles: expected a list of platform roles, got the string {roles!r}")
    host_roles = [flows.tier(role).name for role in dict.fromkeys(roles)]
    for role in sources:
        try:
            flows.check_source(role)
        except flows.FlowsError as exc:
            raise FirewallError(f"firewall sources: {exc}") from None
    addresses = {role: _networks(role, sources[role]) for role in sorted(sources)}
    inbound = flows.inbound(host_roles)
    empty: tuple[list[Network], list[Network]] = ([], [])

    out = [
        f"# nftables table for {host or 'this host'} (roles: {', '.join(host_roles) or 'none'}), rendered by",
        f"# otelstack {__version__} from its flows matrix (docs/vm/firewall.md). Do not edit: re-run the role.",
        "# Declared, deleted and re-created, so that `nft -f` replaces the table in one transaction.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        "",
        f"table inet {TABLE} {{",
    ]
    used = sorted({flow.source for flow in inbound})
    for role in used:
        for family, kind, members in (
            ("v4", "ipv4_addr", addresses.get(role, empty)[0]),
            ("v6", "ipv6_addr", addresses.get(role, empty)[1]),
        ):
            if not members:
                continue
            out += [
                f"\tset {_set_name(role, family)} {{",
                f"\t\ttype {kind}",
                "\t\tflags interval",
                f'\t\tcomment "addresses of {role}"',
                f"\t\telements = {{ {', '.join(_element(n) for n in members)} }}",
                "\t}",
                "",
            ]
    out += [
        "\tchain input {",
        f"\t\ttype filter hook input priority {PRIORITY}; policy accept;",
        '\t\tiif "lo" accept comment "loopback"',
        '\t\tct state established,related accept comment "replies and related traffic"',
    ]
    for flow in inbound:
        v4, v6 = addresses.get(flow.source, empty)
        if not v4 and not v6:
            out.append(f"\t\t# {flow.name}: no address given for {flow.source}, nothing may use this flow")
            continue
        ports = ", ".join(str(p) for p in flow.ports)
        for family, members, keyword in (("v4", v4, "ip"), ("v6", v6, "ip6")):
            if members:
                out.append(
                    f"\t\t{keyword} saddr @{_set_name(flow.source, family)} {flow.protocol} dport {{ {ports} }} "
                    f'ct state new counter accept comment "{flow.name}"'
                )
    for protocol in ("tcp", "udp"):
        guarded = flows.listening_ports(host_roles, protocol)
        if guarded:
            out.append(
                f"\t\t{protocol} dport {{ {', '.join(str(p) for p in guarded)} }} counter drop "
                f'comment "default deny: platform ports ({protocol})"'
            )
    out += ["\t}", "}"]
    return "\n".join(out) + "\n"


def inventory_sources(
    groups: Mapping[str, Sequence[str]], host_addresses: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Source addresses per platform role from an inventory, and the member hosts with no address.

    `groups` maps inventory groups to their hosts; `host_addresses` maps a host to the addresses known
    for it (gathered facts, an IP given as ansible_host). Groups that are not platform roles are ignored.
    """
    sources: dict[str, list[str]] = {}
    unknown: set[str] = set()
    for role in flows.PLATFORM_ROLES:
        members = list(groups.get(role, ()))
        if not members:
            continue
        found: list[str] = []
        for member in members:
            addresses = [a for a in host_addresses.get(member, ()) if a]
            if not addresses:
                unknown.add(member)
            found.extend(addresses)
        sources[role] = sorted(set(found))
    return sources, sorted(unknown)


def host_roles(group_names: Sequence[str]) -> list[str]:
    """The platform roles among a host's inventory groups, in matrix order."""
    return [role for role in flows.PLATFORM_ROLES if role in group_names]
