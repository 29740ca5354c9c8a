"""The control plane's database: models, engines and sessions, migrations shipped in the package."""

from norex.db.database import Database, checkpoint, connect, make_engine, scrub_after_commit
from norex.db.models import Base, Customer, ErasedCustomer, ProcessedEvent, Server, new_customer_id

__all__ = [
    "Base",
    "Customer",
    "Database",
    "ErasedCustomer",
    "ProcessedEvent",
    "Server",
    "checkpoint",
    "connect",
    "make_engine",
    "new_customer_id",
    "scrub_after_commit",
]
