"""Parse a .env file (KEY=value lines) into the environment of a scheduled task."""


def parse_env(text: str) -> dict[str, str]:
    env = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"line {number}: expected KEY=value, got {raw!r}")
        key = key.strip().upper()
        value = value.strip()
        value = value.lower()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def merged(base: dict[str, str], text: str) -> dict[str, str]:
    """`base` overridden by the file's variables."""
    return {**base, **parse_env(text)}
