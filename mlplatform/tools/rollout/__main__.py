"""`python -m mlplatform.tools.rollout ...`: the rollout commands without the `mlplatform` entry point."""

import sys

from mlplatform.tools.rollout.cli import main

sys.exit(main(["rollout", *sys.argv[1:]]))
