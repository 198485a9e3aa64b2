"""What the tests of model-backed proposals share: a key the loopback server expects,
a reply that repairs the sample repository, and the deploy/agent.toml that points the
model chain at the server (`evolve propose`, `evolve cycle`, the spend cap, secrets)."""

from __future__ import annotations

import sqlite3

from llm_server import ScriptedLLM
from repo_setup import Sandbox

SECRET = "sk-live-Zq8vR3nT0pW5yK2m"
KEY_ENV = "RATCHET_TEST_PRIMARY_KEY"
GOOD_REPLY = """Here is the fix.

scripts/calc.py
<<<<<<< SEARCH
    # seeded bug: should multiply
    return a + b
=======
    return a * b
>>>>>>> REPLACE
"""

def configure(
    box: Sandbox, server: ScriptedLLM, *, prices: bool = True, cap: float = 1.0, timeout: int = 5
) -> None:
    models = []
    for name in ("primary", "fallback"):
        price = "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n" if prices else ""
        models.append(
            f'[[llm.models]]\nmodel = "openai/{name}"\napi_base = "{server.url}"\n'
            f'api_key_env = "{KEY_ENV}"\ntimeout_s = {timeout}\nmax_tokens = 1000\n{price}'
        )
    toml = f"[budget]\ndaily_usd = {cap}\n\n" + "\n".join(models)
    box.commit("configure the model chain", {"deploy/agent.toml": toml})


def ledger_rows(box: Sandbox) -> list[dict]:
    with sqlite3.connect(box.path / "runs" / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM llm_calls ORDER BY id")]
