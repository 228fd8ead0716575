"""Platform stack entry point: validate the whole config, then declare the platform.

Config is read here and nowhere else. A bad `Pulumi.<stack>.yaml` raises a
ConfigError before a single resource is registered.
"""

import pulumi

from mlplatform.configuration import load_config
from mlplatform.platform.config import NAMESPACE, PlatformConfig
from mlplatform.platform.program import build_platform

config = load_config(PlatformConfig, NAMESPACE)
for key, value in build_platform(config).items():
    pulumi.export(key, value)
