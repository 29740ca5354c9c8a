"""The lab backend: a customer's server is a lab server (systemd-nspawn) named after the customer id."""

from __future__ import annotations

import contextlib

from norex.errors import NorexError, NotFound
from norex.lab import inventory as lab_inventory
from norex.lab import prepared, servers
from norex.lab.state import all_servers, load_server, servers_dir
from norex.provision.interface import CUSTOMER_ID_RE, ServerHandle, check_customer_id

OWNER_FILE = "norex-owner"


class NotOurs(NorexError):
    """The lab server belongs to another control plane sharing the lab: never touched."""

    transient = False


class LabProvisioner:
    """Lab servers of one control plane. Several control planes (the tests, `norex demo`) share the lab,
    so each server carries its owner (a digest of the control plane's database URL) and a control plane
    sees, finds and destroys only its own: another's server is never taken for an orphan."""

    name = "lab"

    def __init__(self, owner: str, image: str = "stock") -> None:
        self.owner = owner
        self.image = image  # what new servers are made from: stock or prepared (norex.lab.prepared.IMAGES)

    def _owner_of(self, customer_id: str) -> str | None:
        try:
            return (servers_dir() / customer_id / OWNER_FILE).read_text().strip()
        except OSError:
            return None

    def _check_mine(self, customer_id: str) -> None:
        owner = self._owner_of(customer_id)
        if owner is not None and owner != self.owner:
            raise NotOurs(f"lab server {customer_id} belongs to another control plane; not touching it")

    def blocklist_mirror(self) -> str | None:
        """The lab has no internet: the lab web site serves copies of the default sources (norex/lab/data/lists)."""
        from norex.lab import plan
        from norex.net import port_open

        if not port_open(plan.WEB4, 80, timeout=1.0):
            raise NorexError("the lab web site, which serves the default blocklist sources, is not up (norex lab up)")
        return f"http://{plan.WEB4}/lists"

    def create(self, customer_id: str) -> ServerHandle:
        check_customer_id(customer_id)
        self._check_mine(customer_id)
        record = load_server(customer_id)
        if record is None or record.state != "created":
            # Missing, or half-made by a crashed run: start again from nothing.
            with contextlib.suppress(NotFound):
                servers.down(customer_id)
            servers.up(customer_id, image=prepared.image_folder(self.image))
        else:
            servers.start(customer_id)  # no-op when it runs; boots it after a host restart
        (servers_dir() / customer_id / OWNER_FILE).write_text(self.owner + "\n")
        found = self.find(customer_id)
        assert found is not None
        return found

    def destroy(self, customer_id: str) -> None:
        check_customer_id(customer_id)
        self._check_mine(customer_id)
        with contextlib.suppress(NotFound):
            servers.down(customer_id)

    def find(self, customer_id: str) -> ServerHandle | None:
        check_customer_id(customer_id)
        record = load_server(customer_id)
        if record is None or self._owner_of(customer_id) != self.owner:
            return None
        return ServerHandle(
            customer_id,
            self.name,
            record.name,
            record.address,
            record.address6,
            connection={**lab_inventory.shared_connection(), **lab_inventory.host_connection(record)},
            ops_cidrs=lab_inventory.OPS_CIDRS,
            control_plane_cidrs=lab_inventory.CONTROL_PLANE_CIDRS,
            resolver_root=lab_inventory.resolver_root(),
        )

    def existing(self) -> set[str]:
        return {
            r.name for r in all_servers() if CUSTOMER_ID_RE.fullmatch(r.name) and self._owner_of(r.name) == self.owner
        }
