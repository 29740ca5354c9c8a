"""The control plane's use of its servers' agents: push a customer's peer set, read live device status.

A server is reached through its agent only once a converge has reported the agent's certificate (its pin);
until then, and whenever the agent cannot be reached, the callers fall back on a converge (the database is
the source of truth, and the converge applies the same peer set).
"""

from __future__ import annotations

from norex.agent.ca import AgentCA
from norex.agent.client import AgentClient, AgentError
from norex.converge.variables import peer_variables
from norex.db.database import Database
from norex.db.models import Server
from norex.devices import store
from norex.settings import Settings


def client_for(server: Server | None, settings: Settings) -> AgentClient | None:
    if server is None or server.state != "ready" or not server.agent_pin or not server.ipv4:
        return None
    return AgentClient(
        server.ipv4,
        settings.agent_port,
        server.agent_pin,
        AgentCA(settings.agent_ca_dir).ensure(),
        label=f"customer {server.customer_id}'s server",
    )


def _server(db: Database, customer_id: str) -> Server | None:
    with db.read() as session:
        server = session.get(Server, customer_id)
        if server is not None:
            session.expunge(server)
        return server


def push_peers(db: Database, settings: Settings, customer_id: str) -> bool:
    """Send the customer's whole peer set to their server's agent; False when it has none or cannot be reached."""
    client = client_for(_server(db, customer_id), settings)
    if client is None:
        return False
    # The same set, in the same order and form, as the converge gives norex.vpn.wireguard.
    peers = peer_variables(store.peers(db, customer_id))
    try:
        client.put_peers(peers)
    except AgentError:
        return False
    return True


def live_status(db: Database, settings: Settings, customer_id: str) -> dict[str, dict] | None:
    """Per public key: online, rx_bytes, tx_bytes, read from the agent now; None when it cannot tell."""
    client = client_for(_server(db, customer_id), settings)
    if client is None:
        return None
    try:
        answer = client.status()
    except AgentError:
        return None
    return {
        p["public_key"]: {"online": bool(p["online"]), "rx_bytes": int(p["rx_bytes"]), "tx_bytes": int(p["tx_bytes"])}
        for p in answer.get("peers", [])
        if isinstance(p, dict) and "public_key" in p
    }


def dns_tally(db: Database, settings: Settings, customer_id: str) -> dict[str, int] | None:
    """The resolver's anonymous tally, read from the agent now: blocked lookups, all queries, and for how many
    seconds it has counted (since the resolver started); None when it cannot tell."""
    client = client_for(_server(db, customer_id), settings)
    if client is None:
        return None
    try:
        answer = client.dns()
        return {key: int(answer[key]) for key in ("blocked", "queries", "since_seconds")}
    except (AgentError, KeyError, TypeError, ValueError):
        return None
