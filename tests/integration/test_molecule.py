"""`molecule test` on a lab server: create, converge, idempotence, verify, destroy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NOREX, REPO

pytestmark = pytest.mark.lab


def test_molecule_default_scenario():
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "NOREX_BIN": NOREX,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PY_COLORS": "0",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    proc = subprocess.run(
        [str(bindir / "molecule"), "test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"{step}: Executed: Successful" in out, f"{step} did not run:\n{out[-2000:]}"
    exposure = [line.strip() for line in out.splitlines() if "Overall exposure level for norex-agent" in line]
    assert exposure, "verify printed no exposure figure for the agent"
    print(exposure[0])
