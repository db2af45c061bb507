"""The scanning core: walk a tree yourself, ask clamd file by file, fold verdicts (fail closed)."""
