"""Self-modification layer of Ratchet: git, the baseline, the gate, proposers and factory.

It may import `agent`; `agent` never imports it.
"""

__version__ = "0.1.0"
