"""The control plane's whole memory: who pays, what should exist, what does. Nothing about activity.

Times are integer Unix seconds, the unit Stripe uses, so event times and our own compare directly.
"""

from __future__ import annotations

import secrets

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

DESIRED = ("present", "absent")
SERVER_STATES = ("creating", "converging", "ready", "destroying", "failed")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_customer_id() -> str:
    """Opaque, random, and safe as a stack, server or lab name (matches Pulumi's ^c-[0-9a-f]{8,32}$)."""
    return "c-" + secrets.token_hex(8)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Customer(Base):
    """A Stripe customer and the one subscription that decides whether they have a server."""

    __tablename__ = "customers"
    __table_args__ = (CheckConstraint("desired IN ('present', 'absent')", name="desired"),)

    id: Mapped[str] = mapped_column(String(34), primary_key=True, default=new_customer_id)
    # Stripe allows customer emails of up to 512 characters; its object ids are at most 255.
    email: Mapped[str | None] = mapped_column(String(512))
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str | None] = mapped_column(String(32))
    # When the current status began (Stripe time): the past_due grace counts from here.
    status_since: Mapped[int | None] = mapped_column(BigInteger)
    period_end: Mapped[int | None] = mapped_column(BigInteger)
    # `created` of the last event applied for the subscription: older events are ignored.
    last_event_created: Mapped[int | None] = mapped_column(BigInteger)
    # Newest `created` of any subscription event of the customer, applied or not (see billing.core).
    newest_event_created: Mapped[int | None] = mapped_column(BigInteger)
    # `created` of the event the email came from, so a late customer.updated cannot bring back an old address.
    email_event_created: Mapped[int | None] = mapped_column(BigInteger)
    desired: Mapped[str] = mapped_column(String(8), default="absent")
    # customer.deleted arrived while a server still existed: the worker erases the row once it is destroyed.
    erase_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Another subscription of the customer that ended while the current one kept the server (billing.core).
    ended_subscription_id: Mapped[str | None] = mapped_column(String(255))
    # The subscription is cancelled at the end of the period it is in (it still keeps the server until then).
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[int] = mapped_column(BigInteger)

    server: Mapped[Server | None] = relationship(back_populates="customer", uselist=False, passive_deletes=True)


class Server(Base):
    """The customer's dedicated server as the worker last saw it. Its private key never leaves it."""

    __tablename__ = "servers"
    __table_args__ = (
        CheckConstraint(
            "state IN ('creating', 'converging', 'ready', 'destroying', 'failed')",
            name="state",
        ),
    )

    customer_id: Mapped[str] = mapped_column(
        String(34), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    backend: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    ipv4: Mapped[str | None] = mapped_column(String(15))
    ipv6: Mapped[str | None] = mapped_column(String(45))
    public_key: Mapped[str | None] = mapped_column(String(44))
    state: Mapped[str] = mapped_column(String(16), default="creating")
    # Why the latest job on it failed (our one-line message or an exception's class name); None once it works.
    error: Mapped[str | None] = mapped_column(String(1024))
    # What the last successful converge applied (norex.converge.version): `norex rollout` converges the others.
    version: Mapped[str | None] = mapped_column(String(16))
    # SHA-256 of the server agent's certificate, pinned by the control plane's agent client; None until a
    # converge with norex.vpn.agent reports it.
    agent_pin: Mapped[str | None] = mapped_column(String(64))
    # The continuous audit's latest verdict (pass | fail; None before the first), the checks that failed, when
    # (UTC seconds), and how many audits in a row failed: a current value, no history of the server.
    audit_verdict: Mapped[str | None] = mapped_column(String(8))
    audit_failed: Mapped[str | None] = mapped_column(String(512))
    audit_at: Mapped[int | None] = mapped_column(BigInteger)
    audit_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[int] = mapped_column(BigInteger)

    customer: Mapped[Customer] = relationship(back_populates="server")


class ProcessedEvent(Base):
    """Stripe event ids already applied, so a redelivery is a no-op. Pruned after 30 days; no payload kept."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[int] = mapped_column(BigInteger, index=True)


class FailedEvent(Base):
    """Signed events that could not be stored for a reason a redelivery cannot fix, counted per event type:
    never an event's id or content. Shown by `norex doctor`; pruned 30 days after the last one."""

    __tablename__ = "failed_events"

    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    # The exception class of the last failure (e.g. DataError), never its message (it may quote values).
    error: Mapped[str] = mapped_column(String(64))
    last_failed_at: Mapped[int] = mapped_column(BigInteger, index=True)


class ErasedCustomer(Base):
    """A tombstone (sha256 of the Stripe customer id, not the id): a late event cannot resurrect an erased customer."""

    __tablename__ = "erased_customers"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[int] = mapped_column(BigInteger, index=True)


class Device(Base):
    """A customer's device: a WireGuard peer. Its private key is never stored; its endpoint address never known.

    Its name is a label the customer chose (or a random two-word one) and lives only here: the server knows
    public keys and addresses only. The id is opaque (`d-` and 12 hex digits).
    """

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("customer_id", "index", name="uq_devices_customer_index"),
        UniqueConstraint("customer_id", "name", name="uq_devices_customer_name"),
    )

    id: Mapped[str] = mapped_column(String(14), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(34), ForeignKey("customers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    # Host number in the tunnel subnets (2-254): the device is 10.66.0.N and fd9a:3c41:7be2::N; never reused
    # while the device exists.
    index: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[str] = mapped_column(String(44))
    ipv4: Mapped[str] = mapped_column(String(15))
    ipv6: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[int] = mapped_column(BigInteger)


class LoginLink(Base):
    """An emailed one-time login link, kept only as the SHA-256 of its token until it is used or expires (15 min):
    the email it was sent to, nothing about who asked (no address, no user agent)."""

    __tablename__ = "login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
