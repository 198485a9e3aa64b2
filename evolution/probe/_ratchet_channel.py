"""The writing end of the gate's authenticated report channel, for the probe and the
replay: the one owner of the frame format the gate's `evolution.run.channel` reads.

Standard library only: the replay runs where no test machinery may be loaded.
"""

import hmac
import json
import os


def connect(write=os.write, dumps=json.dumps, hmac_new=hmac.new):
    """Read the key, close its descriptor, and return the frame writer (or None when the
    gate did not start this run, e.g. a person running pytest with the plugin).

    The functions it writes with are bound here, once: replacing `os.write` or
    `json.dumps` (or this module's names) later changes nothing it sends."""
    spec = os.environ.pop("RATCHET_CHANNEL", "")
    if not spec:
        return None
    out_fd, key_fd = (int(part) for part in spec.split(","))
    key = b""
    while len(key) < 32:
        chunk = os.read(key_fd, 32 - len(key))
        if not chunk:
            break
        key += chunk
    os.close(key_fd)
    os.set_inheritable(out_fd, False)
    state = {"mac": b"", "seq": 0}

    def emit(kind, **fields):
        state["seq"] += 1
        body = dumps({"seq": state["seq"], "kind": kind, **fields}, default=str,
                     separators=(",", ":")).encode()  # fmt: skip
        mac = hmac_new(key, state["mac"] + body, "sha256").hexdigest()
        state["mac"] = bytes.fromhex(mac)
        data = mac.encode() + b" " + body + b"\n"
        while data:
            data = data[write(out_fd, data):]

    return emit
