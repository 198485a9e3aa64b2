from scripts.log_filter import filter_lines, matches, tail

LOG = [
    "INFO start\n",
    "DEBUG poll queue\n",
    "ERROR disk full\n",
    "\n",
    "DEBUG poll queue\n",
    "WARN slow reply\n",
]


def test_no_patterns_keeps_every_non_empty_line():
    assert len(list(filter_lines(LOG))) == 5


def test_include_pattern():
    assert list(filter_lines(LOG, include="ERROR|WARN")) == ["ERROR disk full", "WARN slow reply"]


def test_exclude_pattern_drops_matching_lines():
    assert list(filter_lines(LOG, exclude="^DEBUG")) == [
        "INFO start",
        "ERROR disk full",
        "WARN slow reply",
    ]


def test_exclude_keeps_other_lines():
    assert matches("ERROR disk full", exclude="DEBUG")


def test_tail_of_included_lines():
    assert tail(LOG, 1, include="queue") == ["DEBUG poll queue"]


def test_tail_of_nothing():
    assert tail(LOG, 0) == []
