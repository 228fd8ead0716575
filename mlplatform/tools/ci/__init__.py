"""Continuous-integration helpers: which stacks a change touches, the deploy matrix,
the active canaries, the registry gate and the alias moves."""
