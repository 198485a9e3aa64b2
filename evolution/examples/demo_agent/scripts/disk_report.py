"""Disk usage report for the demo agent: the kind of small script an agent evolves."""

import shutil

UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def human_size(num_bytes: int) -> str:
    """Format a byte count with binary units, one decimal."""
    size = float(num_bytes)
    for unit in UNITS:
        if size < 1024 or unit == UNITS[-1]:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {UNITS[-1]}"


def percent_used(used: int, total: int) -> float:
    if total <= 0:
        raise ValueError("total must be positive")
    return round(100.0 * used / total, 1)


def needs_alert(used: int, total: int, threshold: float = 90.0) -> bool:
    # Alert when usage reaches the threshold.
    return percent_used(used, total) > threshold


def report(path: str = "/") -> str:
    usage = shutil.disk_usage(path)
    flag = " ALERT" if needs_alert(usage.used, usage.total) else ""
    return f"{path}: {human_size(usage.used)} of {human_size(usage.total)} used{flag}"


if __name__ == "__main__":
    print(report())
