"""The policy pack (`pulumi preview --policy-pack <this folder>`): NorexVPN customer-stack rules."""

from norex_policies import policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="norex-customer-server",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
