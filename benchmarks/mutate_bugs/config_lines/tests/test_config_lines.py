from scripts.config_lines import setting, settings


def test_plain_settings():
    assert settings("host = example.org\nport=8080\n") == {"host": "example.org", "port": "8080"}


def test_a_missing_setting_takes_the_default():
    assert setting("host = example.org", "port", "80") == "80"


def test_an_empty_file_has_no_settings():
    assert settings("") == {}


def test_comments_and_blank_lines_are_skipped():
    assert settings("# the server\nhost = example.org\n\nport = 8080\n") == {
        "host": "example.org", "port": "8080"}


def test_a_commented_out_setting_is_not_set():
    assert setting("# port = 9090\nport = 8080", "port") == "8080"
