from scripts.version_compare import compare, needs_upgrade, newest, parse_version


def test_parse_version_drops_prefix_and_suffix():
    assert parse_version("v1.4.2-rc1") == (1, 4, 2)


def test_minor_versions_compare_numerically():
    assert compare("1.9.7", "1.10.2") == -1


def test_missing_parts_count_as_zero():
    assert compare("1.2", "1.2.0") == 0


def test_needs_upgrade_on_a_patch_release():
    assert needs_upgrade("2.3.1", "2.3.4")


def test_major_version_wins():
    assert compare("2.0.0", "1.9.9") == 1
    assert newest(["1.9.9", "2.0.0", "1.10.0"]) == "2.0.0"
