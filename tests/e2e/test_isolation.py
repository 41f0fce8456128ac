"""The isolation matrix: from every container, every other container's addresses and ports. Only the edges the
topology declares connect (topology_links; a port of a link from the internet is open to any tier that can
route to it, as 0.0.0.0/0 is on AWS), and every declared edge connects on the network of its link. The same
matrix is asserted on the AWS security groups in tests/integration/aws.
"""

from __future__ import annotations

import json

from conftest import Lab

# Galera's IST and SST ports listen only during a state transfer: they are checked closed where not allowed,
# never required open.
TRANSIENT_PORTS = {4444, 4568}
ENGINE = "galera"

PROBE = r"""
import asyncio, json, sys

async def probe(host, port):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.5)
        writer.close()
        return True
    except Exception:
        return False

async def main(targets):
    results = await asyncio.gather(*(probe(host, port) for host, port in targets))
    print(json.dumps(results))

asyncio.run(main(json.loads(sys.argv[1])))
"""


def link_ports(lab: Lab) -> list[tuple[str, str, set[int]]]:
    """(from, to, ports) of every link, the engine's cluster ports filled in."""
    links = []
    for link in lab.topology["topology_links"]:
        ports = link["ports"]
        if isinstance(ports, str):  # the cluster's own link names the engine's ports
            ports = list(lab.topology["topology_cluster_ports"][ENGINE].values())
        links.append((link["from"], link["to"], {int(p) for p in ports}))
    return links


def allowed(lab: Lab, source: str, target: str, port: int) -> bool:
    """Whether a link lets tier `source` open `port` on tier `target` (the internet's links let any tier)."""
    return any(
        link_to == target and port in ports and link_from in (source, "internet")
        for link_from, link_to, ports in link_ports(lab)
    )


def required(lab: Lab, source: str, target: str, network: str, port: int) -> bool:
    """Whether the connection must succeed: the link's own network carries it."""
    return any(
        link_from == source and link_to == target and port in ports and network == f"{lab.project}-{source}-{target}"
        for link_from, link_to, ports in link_ports(lab)
    )


def test_only_the_declared_edges_connect(lab: Lab) -> None:
    ports = sorted(set().union(*(ports for _, _, ports in link_ports(lab))))
    assert {3000, 8000, 9000, 3306, 4567} <= set(ports)
    wrong: list[str] = []
    checked = opened = 0
    for source in lab.nodes.values():
        cases = [
            (target, network, address, port)
            for target in lab.nodes.values()
            if target is not source
            for network, address in sorted(target.addresses.items())
            for port in ports
        ]
        targets = json.dumps([[address, port] for _, _, address, port in cases])
        results = json.loads(source.sh(f"python3 -c '{PROBE}' '{targets}'", timeout=120).stdout)
        for (target, network, address, port), connected in zip(cases, results, strict=True):
            checked += 1
            opened += connected
            if connected and not allowed(lab, source.tier, target.tier, port):
                wrong.append(f"{source.name} -> {target.name} {address}:{port} ({network}) connects but must not")
            if not connected and required(lab, source.tier, target.tier, network, port) and port not in TRANSIENT_PORTS:
                wrong.append(f"{source.name} -> {target.name} {address}:{port} ({network}) must connect but does not")
    assert wrong == [], "\n".join(wrong)
    assert opened > 0 and checked > 100


def test_the_gatekeeper_cannot_reach_the_proxy_or_the_databases(lab: Lab) -> None:
    """The issue's own words, checked literally so a topology typo cannot make the matrix agree with itself."""
    gatekeeper = lab.with_role("gatekeeper")[0]
    trusted = lab.with_role("trusted_host")[0]
    proxy = lab.with_role("sql_proxy")[0]
    sql_nodes = lab.with_role("sql_node")
    probes = [(proxy, 9000)] + [(node, 3306) for node in sql_nodes]
    for source, cases in [(gatekeeper, probes), (trusted, [(node, 3306) for node in sql_nodes])]:
        targets = [[address, port] for node, port in cases for address in node.addresses.values()]
        results = json.loads(source.sh(f"python3 -c '{PROBE}' '{json.dumps(targets)}'").stdout)
        assert not any(results), f"{source.name} reaches {[t for t, r in zip(targets, results, strict=True) if r]}"
    # ...while the allowed hop right behind each does connect.
    for source, node, port in [(gatekeeper, trusted, 8000), (trusted, proxy, 9000), (proxy, sql_nodes[0], 3306)]:
        targets = [[address, port] for address in node.addresses.values()]
        assert any(json.loads(source.sh(f"python3 -c '{PROBE}' '{json.dumps(targets)}'").stdout))
