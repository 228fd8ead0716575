"""Passwords the platform generates with pulumi-random when the stack brings none.

The only module that loads pulumi_random. The components import it at the point
where they generate a password, not at their top: the Pulumi engine wants the
random plugin for every program that loads pulumi_random, and a stack that brings
its own passwords (or turns Grafana off) must run without it.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random


def generated_password(
    resource_name: str, *, length: int, special_characters: str | None, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A RandomPassword child of `parent`, as a secret Output.

    `special_characters`: the only non-alphanumerics allowed (None: letters and digits only)."""
    opts = pulumi.ResourceOptions(parent=parent)
    if special_characters is None:
        password = random.RandomPassword(resource_name, length=length, special=False, opts=opts)
    else:
        password = random.RandomPassword(
            resource_name, length=length, special=True, override_special=special_characters, opts=opts
        )
    return pulumi.Output.secret(password.result)
