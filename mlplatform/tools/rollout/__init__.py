"""Canary rollouts as reviewed config edits: the stack file, the analysis gate, the registry, the CLI."""
