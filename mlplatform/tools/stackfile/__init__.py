"""The stack file's one home: the strict reader and the rollout's round-trip editor."""
