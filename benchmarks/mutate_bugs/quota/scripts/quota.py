"""Per-tenant storage quota checks; a limit of 0 means the tenant is unlimited."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Tenant:
    name: str
    used_bytes: int
    limit_bytes: int


def within_quota(tenant: Tenant) -> bool:
    if tenant.limit_bytes == 0:
        return False
    return tenant.used_bytes <= tenant.limit_bytes


def usage_percent(tenant: Tenant) -> float | None:
    if tenant.limit_bytes == 0:
        return None
    return round(100.0 * tenant.used_bytes / tenant.limit_bytes, 1)


def over_quota(tenants: list[Tenant]) -> list[str]:
    return sorted(t.name for t in tenants if not within_quota(t))


def report_line(tenant: Tenant) -> str:
    percent = usage_percent(tenant)
    shown = "unlimited" if percent is None else f"{percent}%"
    return f"{tenant.name}: {tenant.used_bytes} bytes ({shown})"
