"""Model stack entry point: one stack per model and environment (`fraud-detector-prod`).

Config is read here and nowhere else: a bad `Pulumi.<stack>.yaml` raises a
ConfigError before the platform is even referenced, so nothing is registered.
"""

import pulumi

from mlplatform.configuration import load_config
from mlplatform.model.config import CONFIG_NAMESPACE, ModelStackConfig
from mlplatform.model.live_abort import previous_record, self_reference_name
from mlplatform.model.platform_outputs import PlatformOutputs
from mlplatform.model.program import build_model_stack

config = load_config(ModelStackConfig, CONFIG_NAMESPACE)
platform = PlatformOutputs.read(config.platform_stack)
# This stack's own last outputs locate its InferenceService record, whose live status holds any
# abort; on a first deploy there are none, and nothing is read.
previous = previous_record(pulumi.StackReference(self_reference_name()))
for key, value in build_model_stack(config, platform, previous).items():
    pulumi.export(key, value)
