"""The audit trail in git: its format (every trailer key), what Ratchet writes (commit
messages and notes) and how it is read back (`evolve log`, `evolve show`). Git is the
trail; nothing here keeps state of its own.
"""
