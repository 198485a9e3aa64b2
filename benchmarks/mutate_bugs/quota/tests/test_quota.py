from scripts.quota import Tenant, over_quota, report_line, usage_percent, within_quota


def test_under_the_limit():
    assert within_quota(Tenant("a", 50, 100))


def test_over_the_limit():
    assert not within_quota(Tenant("a", 150, 100))


def test_unlimited_tenant_is_always_within_quota():
    assert within_quota(Tenant("big", 10**12, 0))


def test_over_quota_lists_offenders_only():
    tenants = [Tenant("b", 300, 100), Tenant("a", 10, 100), Tenant("c", 5, 0)]
    assert over_quota(tenants) == ["b"]


def test_usage_percent():
    assert usage_percent(Tenant("a", 25, 200)) == 12.5


def test_report_line_unlimited():
    assert report_line(Tenant("c", 5, 0)) == "c: 5 bytes (unlimited)"
