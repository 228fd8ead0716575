"""The offline engine: a stack's real program under recording mocks, with no engine, cloud or cluster."""
