"""What the "What we store" page says, read from the settings that make it true: the roles' defaults (which the
control plane's converge does not override) and the database's own tables. No figure on the page is typed in
by hand, so the page cannot drift from what the servers and the control plane do."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from norex.db.models import Customer, Device, LoginLink, Server
from norex.project import project_dir

ROLES = Path("collections/ansible_collections/norex/vpn/roles")


@dataclass(frozen=True)
class Stored:
    journal_storage: str
    journal_cap: str
    journal_retention: str
    journal_level: str
    resolver_cache_ttl: int
    tcp_established: int
    udp_stream: int
    endpoint_purge: int
    database: dict[str, list[str]]


def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((project_dir() / ROLES / role / "defaults/main.yml").read_text()) or {}


# Every column of the tables that hold a customer's data, in plain words (a unit test fails when a column has
# none, so nothing is stored that this page does not name).
PLAIN = {
    "customers": {
        "id": "a random id of ours", "email": "your email", "stripe_customer_id": "Stripe's id for you",
        "subscription_id": "Stripe's id for your subscription", "status": "your subscription's status",
        "status_since": "since when it has that status", "period_end": "when the paid period ends",
        "last_event_created": "the time of Stripe's latest message about it",
        "newest_event_created": "the time of Stripe's newest message about you",
        "email_event_created": "the time of the message your email came with",
        "desired": "whether you should have a server", "erase_requested": "whether you closed your account",
        "ended_subscription_id": "an ended subscription's id, while another one runs",
        "cancel_at_period_end": "whether you cancelled it at the period's end",
        "created_at": "when the account was made",
    },
    "servers": {
        "customer_id": "whose server it is", "backend": "where it runs", "name": "its name",
        "ipv4": "its IPv4 address", "ipv6": "its IPv6 address", "public_key": "its WireGuard public key",
        "state": "whether it is being made, ready or being destroyed", "error": "why its latest job failed",
        "version": "what its latest converge applied", "agent_pin": "its agent's certificate fingerprint",
        "audit_verdict": "its latest audit's verdict", "audit_failed": "which checks that audit failed",
        "audit_at": "when it was audited", "audit_failures": "how many audits in a row failed",
        "updated_at": "when this was last changed",
    },
    "devices": {
        "id": "a random id of ours", "customer_id": "whose device it is", "name": "the name you gave it",
        "index": "its number on your server", "public_key": "its WireGuard public key",
        "ipv4": "its address inside the tunnel", "ipv6": "its IPv6 address inside the tunnel",
        "created_at": "when it was added",
    },
    "login_links": {
        "token_hash": "a fingerprint of the link (not the link)", "email": "the email it went to",
        "expires_at": "when it stops working",
    },
}  # fmt: skip


def columns(model) -> list[str]:
    return [PLAIN[model.__tablename__][c.name] for c in model.__table__.columns]


@cache
def stored() -> Stored:
    no_logs, resolver = role_defaults("no_logs"), role_defaults("resolver")
    firewall, agent = role_defaults("firewall"), role_defaults("agent")
    timeouts = firewall["firewall_conntrack_timeouts"]
    return Stored(
        journal_storage=no_logs["no_logs_journald_storage"],
        journal_cap=no_logs["no_logs_journald_runtime_max_use"],
        journal_retention=no_logs["no_logs_journald_max_retention"],
        journal_level=no_logs["no_logs_journald_max_level_store"],
        resolver_cache_ttl=int(resolver["resolver_cache_max_ttl"]),
        tcp_established=int(timeouts["tcp_timeout_established"]),
        udp_stream=int(timeouts["udp_timeout_stream"]),
        endpoint_purge=int(agent["agent_online_seconds"]) + int(agent["agent_purge_interval"]),
        database={
            "your account": columns(Customer),
            "your server": columns(Server),
            "your devices": columns(Device),
            "a login link, for 15 minutes": columns(LoginLink),
        },
    )
