"""The norex.vpn collection's own Python, shared with the control plane: one implementation each.

plugin_utils/wg_peers.py (the WireGuard peer rules: the role's input filters, the server agent and the
control plane's device checks), plugin_utils/agent_ca.py (the agent certificates: the converge's filter and
the control plane's CA) and module_utils/audit_claims.py (the sentences of the promise the audit's checks
back: the audit module and `norex audit`). They are imported from this checkout's collection, whatever
NOREX_PROJECT_DIR says, so that the package and its rules never disagree.
"""

from __future__ import annotations

import sys

from norex.project import CHECKOUT

if str(CHECKOUT / "collections") not in sys.path:
    sys.path.insert(0, str(CHECKOUT / "collections"))

from ansible_collections.norex.vpn.plugins.module_utils import audit_claims
from ansible_collections.norex.vpn.plugins.plugin_utils import agent_ca, wg_peers

__all__ = ["agent_ca", "audit_claims", "wg_peers"]
