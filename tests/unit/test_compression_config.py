"""[compression] and the route's compress keys: defaults, overrides, errors naming the key."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ImportError:  # PyPy 3.9
    import tomli as tomllib

from revproxy.config.load import ConfigError, parse_config

POOL = '\n[pools.app]\nmembers = ["http://127.0.0.1:9000"]\n'


def parse(text):
    return parse_config(tomllib.loads(text + POOL), "conf/x.toml")


def error_of(text):
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_defaults_and_route_flag():
    """compress is off by default; [compression] defaults: br then gzip, 1 KiB, level 5."""
    config = parse('[[routes]]\npool = "app"\ncompress = true\n[[routes]]\npool = "app"\n')
    assert [r.compress for r in config.routes] == [True, False]
    assert config.compression.codings == ("br", "gzip")
    assert config.compression.min_size == 1024 and config.compression.level == 5
    assert "text/*" in config.compression.types


def test_section_and_route_overrides_parse():
    config = parse('[compression]\ncodings = ["zstd", "gzip"]\nmin_size = "2k"\nlevel = 1\n'
                   'types = ["Text/HTML", "application/*"]\nbrotli_level = 11\nzstd_level = 19\n'
                   '[[routes]]\npool = "app"\ncompress = true\ncompress_types = ["text/css"]\n'
                   'compress_min_size = 0\ncompress_level = 9\n')
    c = config.compression
    assert c.codings == ("zstd", "gzip") and c.min_size == 2048 and c.level == 1
    assert c.types == ("text/html", "application/*")
    route = config.routes[0]
    assert (route.compress_types, route.compress_min_size, route.compress_level) == (
        ("text/css",), 0, 9)


@pytest.mark.parametrize("text,where,expected", [
    ('[compression]\ncodings = ["deflate"]\n', "[compression] codings", 'one of: "zstd"'),
    ('[compression]\ncodings = []\n', "[compression] codings", "non-empty"),
    ('[compression]\nlevel = 10\n', "[compression] level", "from 1 to 9"),
    ('[compression]\ntypes = ["html"]\n', "[compression] types", "media type"),
    ('[compression]\nmin_size = "big"\n', "[compression] min_size", "size"),
    ('[compression]\ngzip = true\n', "[compression]", "gzip"),
    ('[[routes]]\npool = "app"\ncompress = "yes"\n', "compress", "true or false"),
    ('[[routes]]\npool = "app"\ncompress_level = 0\n', "compress_level", "from 1 to 9"),
])
def test_bad_values_name_file_key_and_expectation(text, where, expected):
    message = error_of(text)
    assert "conf/x.toml" in message and where in message and expected in message, message


def test_reload_log_names_compression_changes():
    """A reload that changes [compression] or a route's compress says so in its log line."""
    from revproxy.config.diff import describe_changes

    old = parse('[[routes]]\npool = "app"\nname = "r"\n')
    new = parse('[compression]\nlevel = 6\n[[routes]]\npool = "app"\nname = "r"\ncompress = true\n')
    lines = describe_changes(old, new)
    assert "[compression] changed: level 5 -> 6" in lines
    assert any(line.startswith("route r changed: compress") for line in lines), lines
