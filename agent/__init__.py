"""Runtime layer of Ratchet: primitives the always-on agent and the evolution engine share.

This package must never import `evolution`: the runtime has to keep working even
when the self-modification layer is broken.
"""
