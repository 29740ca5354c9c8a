"""Run the real program under Pulumi's own mocks and record every resource registration.

For tests (here and in the control plane's hcloud backend): no CLI, no provider plugin, no cloud.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from . import program

MOCK_IPV4 = "203.0.113.10"
MOCK_IPV6 = "2001:db8:1::1"


@dataclass
class Registration:
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    custom: bool
    urn: str = ""
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource's inputs exactly as the engine (and a provider, and CrossGuard) would see them."""

    def __init__(self) -> None:
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id = f"{len(self.registrations) + 1000}"
        self.registrations.append(Registration(args.typ, args.name, resource_id, dict(args.inputs), args.custom))
        state = dict(args.inputs)
        if args.typ == "hcloud:index/server:Server":
            state.update(ipv4Address=MOCK_IPV4, ipv6Address=MOCK_IPV6, status="running")
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        raise AssertionError(f"the program should call no functions, called {args.token}")


class RecordingMonitor(MockMonitor):
    """Also records what the mocks do not see: parent, dependencies and resource options."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: dict[tuple[str, str], Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.requests[(request.type, request.name)] = request
        return super().RegisterResource(request)


@dataclass
class Run:
    registrations: list[Registration]
    outputs: dict[str, Any]

    def one(self, type_: str) -> Registration:
        found = [r for r in self.registrations if r.type == type_]
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]


def run_program(raw: Mapping[str, Any] | None = None, *, main: Any = None) -> Run:
    """Run `program.build(raw)` (or `main()`, e.g. the real __main__.py) under mocks; resolve the stack outputs."""
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, preview=False, monitor=monitor)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def body() -> pulumi.Output[Any]:
        if main is None:
            program.build(raw or {})
        else:
            main()
        stack = pulumi.runtime.get_root_resource()
        exported = {name: stack.outputs[name] for name in program.OUTPUTS}  # type: ignore[union-attr]
        return pulumi.Output.all(**exported).apply(outputs.update)

    body()
    for registration in mocks.registrations:
        request = monitor.requests[(registration.type, registration.name)]
        registration.urn = monitor.make_urn(request.parent, request.type, request.name)
        registration.parent = request.parent
        registration.dependencies = list(request.dependencies)
        registration.ignore_changes = list(request.ignoreChanges)
        registration.delete_before_replace = request.deleteBeforeReplace
    return Run(mocks.registrations, outputs)
