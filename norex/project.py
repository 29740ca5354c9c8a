"""Where the checkout's playbooks/, collections/ and pulumi/ are: the files the control plane runs.

The package is installed editable from the checkout, so by default it is the folder above norex/;
NOREX_PROJECT_DIR points a worker at another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from norex.errors import MissingPrerequisite

CHECKOUT = Path(__file__).resolve().parent.parent
SITE_PLAYBOOK = "playbooks/site.yml"


def project_dir() -> Path:
    """The folder with playbooks/ and collections/ (the repository, or NOREX_PROJECT_DIR)."""
    folder = Path(os.environ.get("NOREX_PROJECT_DIR") or CHECKOUT)
    if not (folder / SITE_PLAYBOOK).is_file():
        raise MissingPrerequisite(f"no {SITE_PLAYBOOK} in {folder} (set NOREX_PROJECT_DIR to the norex checkout)")
    return folder


def pulumi_dir() -> Path:
    """The Pulumi project (pulumi/ of the project folder)."""
    folder = project_dir() / "pulumi"
    if not (folder / "Pulumi.yaml").is_file() or not (folder / "__main__.py").is_file():
        raise MissingPrerequisite(f"no Pulumi program in {folder} (set NOREX_PROJECT_DIR to the norex checkout)")
    return folder
