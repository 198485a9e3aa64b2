"""Read the `key = value` settings of a small configuration file."""


def settings(text: str) -> dict[str, str]:
    """The file's settings, in order; blank lines and `#` comments are skipped."""
    lines = text.splitlines()
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        found[key.strip()] = value.strip()
        i += 1
    return found


def setting(text: str, key: str, default: str = "") -> str:
    """One setting, or `default` when the file does not set it."""
    return settings(text).get(key, default)
