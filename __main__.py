"""Platform stack entry point: validate the whole config, then declare the platform.

Config is read here and nowhere else. A bad `Pulumi.<stack>.yaml` (or a bad
`MLPLATFORM_CHART_MIRROR` or `MLPLATFORM_IMAGE_REGISTRY` in the environment) raises a ConfigError before a
single resource is registered.
"""

import os

import pulumi

from mlplatform.configuration import load_config
from mlplatform.platform.chart_mirror import with_chart_mirror
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig
from mlplatform.platform.image_mirror import with_image_registry
from mlplatform.platform.program import build_platform

stack = pulumi.get_stack()
config = with_chart_mirror(load_config(PlatformConfig, CONFIG_NAMESPACE), os.environ, stack=stack)
config = with_image_registry(config, os.environ, stack=stack)
for key, value in build_platform(config).exported().items():
    pulumi.export(key, value)
