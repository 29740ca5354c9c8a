"""The sentences of the promise the audit's checks back, and which check backs which (norex.vpn.audit, norex audit).

Shared by the module on the server and the control plane's `norex audit`; docs/claims.md maps the same
sentences to the tasks that make them true and the lab tests that prove them.
"""

from __future__ import annotations

# The sentences of the promise (../shared/seed/norexvpn-no-logs.txt, docs/claims.md) the checks back.
CLAIMS = {
    "designed": "If a provider has not actively designed logging out, the safe assumption is that something is "
    "being written down.",
    "no_record": "A genuine no-logs VPN does not store any of this.",
    "designed_out": "Most logging on a Linux server is on out of the box.",
    "no_rule": "On your server, traffic is routed at the network level without any rule that records or captures it.",
    "no_capture": "There is no packet capture running, no sniffing, no process quietly writing down where your "
    "connections go.",
    "no_trail": "Packets come in, get routed out, and leave no trail behind them on the machine.",
    "control_software": "The control software that manages the server is itself configured not to keep request logs.",
    "dns_no_record": "NorexVPN runs a dedicated DNS resolver on your own server, so your lookups do not go to your "
    "internet provider, and the resolver is configured not to record the domains you request.",
    "dns_minimum": "It also asks upstream servers for only the minimum information needed to resolve a name, "
    "which limits what anyone further up the chain can see, and it blocks known ad, tracker, and malware domains "
    "at the DNS layer before they ever load.",
    "live_memory": "It lives in memory, not in a file.",
    "live_gone": "It is never written to a log, and it is gone the instant your session ends.",
    "nothing_to_produce": "There is no central pool to watch, no activity history accumulating on disk, and "
    "nothing to produce if someone comes asking.",
    "answers_to_you": "Your server answers to your devices and nothing else.",
}

# Each check and the sentence it backs (docs/claims.md lists the same, with the tasks and the tests).
# drift.site_yml runs on the controller (norex audit: site.yml in check mode); the others in the module.
CHECK_CLAIMS = {
    "drift.site_yml": "designed",
    "journald.settings": "designed_out",
    "journald.no_persistent_journal": "no_record",
    "journald.runtime_cap": "live_gone",
    "daemons.no_syslog_audit_accounting": "designed_out",
    "storage.volatile_folders": "nothing_to_produce",
    "records.no_login_records": "no_record",
    "records.no_core_dumps": "nothing_to_produce",
    "records.no_shell_history": "no_record",
    "records.no_plain_swap": "nothing_to_produce",
    "capture.no_tools": "no_capture",
    "capture.apt_pin": "no_capture",
    "capture.no_packet_sockets": "no_capture",
    "capture.no_recording_rules": "no_rule",
    "capture.no_conntrack_listener": "no_trail",
    "capture.no_bpf_on_interfaces": "no_capture",
    "resolver.records_nothing": "dns_no_record",
    "resolver.control_local_only": "control_software",
    "resolver.minimal_and_validating": "dns_minimum",
    "bounds.resolver_cache": "live_gone",
    "wireguard.interface": "answers_to_you",
    "wireguard.private_key": "nothing_to_produce",
    "agent.no_request_logs": "control_software",
    "bounds.wireguard_endpoints": "live_gone",
    "agent.port_control_plane_only": "control_software",
    "bounds.conntrack": "live_gone",
    "bounds.login_records_in_run": "live_memory",
    "kernel.no_log_martians": "no_trail",
    "kernel.no_pstore": "nothing_to_produce",
    "kernel.no_open_log_files": "nothing_to_produce",
}

# What a root shell on a running server can find of a customer's devices and what they do, and where. Only these
# places hold any of it, each bounded by the check named; anything found elsewhere is a finding (the seizure
# test, tests/integration/test_seizure_lab.py, searches everywhere else too). A powered-off server's disk holds
# only the configuration: the current devices' public keys and tunnel addresses, in the interface's config.
LIVE_STATE = {
    "wg show": ("the peers' public keys and tunnel addresses, each peer's last endpoint while it is online",
                "bounds.wireguard_endpoints"),
    "conntrack": ("the flows in progress: their addresses and ports, until their timeout", "bounds.conntrack"),
    "unbound-control dump_cache": ("the names looked up and their answers, until their TTL", "bounds.resolver_cache"),
    # No check bounds it: the kernel keeps a few entries until reboot. A cloud server's link holds only its
    # gateway, so no customer address is ever in it; the lab's flat network puts devices on the server's link.
    "ip neigh": ("the addresses on the server's own link it exchanged packets with", None),
}  # fmt: skip
CONFIGURATION = {
    "/etc/wireguard/wg0.conf": ("the current devices' public keys and tunnel addresses", "wireguard.interface"),
}
