"""`python -m bench.engine` (`make bench-e2e`): a weight step and a rollback at the engine's floor.

See `__main__` for what is measured and how.
"""
