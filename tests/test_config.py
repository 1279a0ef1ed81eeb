"""Settings from flags and environment, without starting anything."""

import dataclasses

import pytest

from pingproxy.config import OPTIONS, ConfigError, Settings, build_parser, load


def test_defaults_work_without_any_setting():
    settings = load([], {})

    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.connect_timeout_seconds == 3.0 and settings.forward_timeout_seconds == 8.0
    assert settings.max_reply_bytes == settings.max_body_bytes == 64 * 1024
    assert not settings.allow_private
    assert settings.default_endpoint is None
    assert settings.discovery_cache_seconds == 300
    assert settings.discovery_max_page_bytes == 1024 * 1024


def test_platform_host_and_port_are_read():
    assert load([], {"PORT": "5000", "HOST": "0.0.0.0"}).port == 5000
    assert load([], {"PORT": "5000", "HOST": "0.0.0.0"}).host == "0.0.0.0"


def test_flags_beat_pingproxy_variables_which_beat_platform_ones():
    environ = {"PORT": "5000", "PINGPROXY_PORT": "6000"}

    assert load([], environ).port == 6000
    assert load(["--port", "7000"], environ).port == 7000


def test_every_setting_has_exactly_one_option():
    names = [option.name for option in OPTIONS]

    assert sorted(names) == sorted(f.name for f in dataclasses.fields(Settings))


def test_help_lists_every_option_with_its_default_and_variable():
    for option in OPTIONS:
        for command in option.commands:
            help_text = " ".join(build_parser(command).format_help().split())
            assert option.flag in help_text
            assert option.environment[0] in help_text
    serve_help = " ".join(build_parser("serve").format_help().split())
    assert "default: 127.0.0.1" in serve_help and "default: 8080" in serve_help


@pytest.mark.parametrize(("argv", "environ", "name"), [
    ([], {"PINGPROXY_TIMEOUT": "abc"}, "PINGPROXY_TIMEOUT"),
    ([], {"PINGPROXY_TIMEOUT": "-1"}, "PINGPROXY_TIMEOUT"),
    (["--port", "99999"], {}, "--port"),
    ([], {"PORT": "http"}, "PORT"),
    ([], {"PINGPROXY_ALLOW_PRIVATE": "maybe"}, "PINGPROXY_ALLOW_PRIVATE"),
    ([], {"PINGPROXY_ALLOWED_ENDPOINTS": "exa mple.com"}, "PINGPROXY_ALLOWED_ENDPOINTS"),
    ([], {"PINGPROXY_ALLOWED_ENDPOINTS": "https://example.com/"}, "PINGPROXY_ALLOWED_ENDPOINTS"),
    ([], {"PINGPROXY_ALLOWED_PORTS": "80,x"}, "PINGPROXY_ALLOWED_PORTS"),
    ([], {"PINGPROXY_MAX_INFLIGHT": "0"}, "PINGPROXY_MAX_INFLIGHT"),
    ([], {"PINGPROXY_TIMEOUT": "nan"}, "PINGPROXY_TIMEOUT"),
    (["--default-endpoint", "/webmention"], {}, "--default-endpoint"),
    ([], {"PINGPROXY_DEFAULT_ENDPOINT": "ftp://example.com/wm"}, "PINGPROXY_DEFAULT_ENDPOINT"),
    ([], {"PINGPROXY_DISCOVERY_CACHE_SECONDS": "-1"}, "PINGPROXY_DISCOVERY_CACHE_SECONDS"),
    ([], {"PINGPROXY_DISCOVERY_CACHE_SECONDS": "inf"}, "PINGPROXY_DISCOVERY_CACHE_SECONDS"),
    (["--discovery-max-page", "0"], {}, "--discovery-max-page"),
])
def test_invalid_values_name_their_setting(argv, environ, name):
    with pytest.raises(ConfigError) as caught:
        load(argv, environ)

    assert str(caught.value).startswith(f"{name}: invalid value")


def test_lists_are_parsed():
    settings = load(["--allowed-endpoints", "Example.COM, *.example.org.", "--allowed-ports",
                     "443, 8443"], {"PINGPROXY_ALLOW_PRIVATE": "yes"})

    assert settings.allowed_endpoints == ("example.com", "*.example.org")
    assert settings.allowed_ports == frozenset({443, 8443})
    assert settings.allow_private


def test_switch_flag_turns_a_setting_on():
    assert load(["--allow-private"], {}).allow_private


def test_discovery_options_are_read():
    settings = load(["--discovery-cache-seconds", "0", "--discovery-max-page", "4096"],
                    {"PINGPROXY_DEFAULT_ENDPOINT": " https://example.com/webmention?k=1 "})

    assert settings.default_endpoint == "https://example.com/webmention?k=1"
    assert settings.discovery_cache_seconds == 0
    assert settings.discovery_max_page_bytes == 4096


def test_an_empty_default_endpoint_means_discovery():
    assert load([], {"PINGPROXY_DEFAULT_ENDPOINT": ""}).default_endpoint is None


def test_check_and_page_settings_have_safe_defaults():
    settings = load([], {})

    assert settings.public_url is None and settings.trust_forwarded == "off"
    assert str(settings.check_rate_limit) == "6/min" and settings.max_checks == 4


@pytest.mark.parametrize(("text", "expected"), [
    ("https://pingproxy.example", "https://pingproxy.example"),
    ("https://example.com/pingback/", "https://example.com/pingback"),
])
def test_the_public_url_is_kept_without_a_trailing_slash(text, expected):
    assert load(["--public-url", text], {}).public_url == expected


@pytest.mark.parametrize("text", ["pingproxy.example", "ftp://x.example/",
                                  "https://x.example/?a=1", "https://x.example/#top"])
def test_a_public_url_that_cannot_prefix_pingback_urls_is_refused(text):
    with pytest.raises(ConfigError, match="--public-url"):
        load(["--public-url", text], {})


@pytest.mark.parametrize(("text", "expected"), [("x-forwarded", "x-forwarded"),
                                                ("FORWARDED", "forwarded"), ("off", "off")])
def test_trust_forwarded_names_the_headers_to_believe(text, expected):
    assert load([], {"PINGPROXY_TRUST_FORWARDED": text}).trust_forwarded == expected


def test_trust_forwarded_refuses_a_bare_yes():
    with pytest.raises(ConfigError, match="must be one of off, x-forwarded, forwarded"):
        load(["--trust-forwarded", "yes"], {})


def test_the_check_limit_can_be_lifted_and_checks_turned_off():
    settings = load(["--check-rate-limit", "off", "--max-checks", "0"], {})

    assert settings.check_rate_limit is None and settings.max_checks == 0


def test_check_and_ping_take_the_outbound_settings_only():
    settings = load(["--allow-private", "--timeout", "2", "--public-url",
                     "https://p.example"], {}, "check")

    assert settings.allow_private and settings.forward_timeout_seconds == 2
    assert settings.public_url == "https://p.example"
    with pytest.raises(SystemExit):
        load(["--port", "9000"], {}, "ping")


def _is_list_setting(option) -> bool:
    kind = str(next(f.type for f in dataclasses.fields(Settings) if f.name == option.name))
    return "tuple" in kind or "frozenset" in kind


LIST_OPTIONS = [option for option in OPTIONS if _is_list_setting(option)]


def test_every_list_setting_is_found_by_its_type():
    assert {option.name for option in LIST_OPTIONS} >= {
        "allowed_endpoints", "allowed_ports", "send_tokens", "send_allowed_sources"}


def _command_of(option) -> str:
    return "serve" if "serve" in option.commands else sorted(option.commands)[0]


@pytest.mark.parametrize("text", [",", ",,,", " ", " , , ", ""])
@pytest.mark.parametrize("option", LIST_OPTIONS, ids=lambda option: option.flag)
def test_a_list_setting_that_names_nothing_is_refused_from_the_variable(option, text):
    variable = option.environment[0]

    with pytest.raises(ConfigError) as caught:
        load([], {variable: text}, _command_of(option))

    message = str(caught.value)
    assert message.startswith(f"{variable}: ") and "\n" not in message
    assert "names no " in message and "leave it unset for the default" in message


@pytest.mark.parametrize("text", [",", ",,,", " ", ""])
@pytest.mark.parametrize("option", LIST_OPTIONS, ids=lambda option: option.flag)
def test_a_list_setting_that_names_nothing_is_refused_from_the_flag(option, text):
    with pytest.raises(ConfigError) as caught:
        load([f"{option.flag}={text}"], {}, _command_of(option))

    assert str(caught.value).startswith(f"{option.flag}: ")
    assert "names no " in str(caught.value)


@pytest.mark.parametrize(("variable", "message"), [
    ("PINGPROXY_ALLOWED_ENDPOINTS", "PINGPROXY_ALLOWED_ENDPOINTS: ',' names no host: name at "
                                    "least one, or leave it unset for the default (any public "
                                    "host)"),
    ("PINGPROXY_ALLOWED_PORTS", "PINGPROXY_ALLOWED_PORTS: ',' names no port: name at least "
                                "one, or leave it unset for the default (80,443,8080,8443; any "
                                "with --allow-private)"),
    ("PINGPROXY_SEND_ALLOWED_SOURCES", "PINGPROXY_SEND_ALLOWED_SOURCES: ',' names no host: name "
                                       "at least one, or leave it unset for the default (any "
                                       "host)"),
    ("PINGPROXY_SEND_TOKEN", "PINGPROXY_SEND_TOKEN: (not shown: it is a secret) names no token: "
                             "name at least one, or leave it unset for the default (none: "
                             "/api/send answers 404)"),
])
def test_an_empty_list_says_what_is_wrong_and_the_default(variable, message):
    with pytest.raises(ConfigError) as caught:
        load([], {variable: ","})

    assert str(caught.value) == message


def test_unset_list_settings_keep_their_documented_defaults():
    settings = load([], {})

    assert settings.allowed_endpoints == () and settings.allowed_ports is None
    assert settings.send_tokens == () and settings.send_allowed_sources == ()


def test_empty_items_between_real_ones_are_dropped():
    settings = load([], {"PINGPROXY_ALLOWED_ENDPOINTS": "example.com,,", "PINGPROXY_ALLOWED_PORTS":
                         " 443 ,", "PINGPROXY_SEND_ALLOWED_SOURCES": ",blog.example"})

    assert settings.allowed_endpoints == ("example.com",)
    assert settings.allowed_ports == frozenset({443})
    assert settings.send_allowed_sources == ("blog.example",)


SECRET_TOKEN = "s3cret-token-value-nobody-may-see"


@pytest.mark.parametrize("text", [f"{SECRET_TOKEN},short", f"tiny-{SECRET_TOKEN[:5]}"])
def test_a_bad_token_is_named_and_never_shown(text):
    with pytest.raises(ConfigError) as caught:
        load([], {"PINGPROXY_SEND_TOKEN": text})

    message = str(caught.value)
    assert message.startswith("PINGPROXY_SEND_TOKEN: invalid value (not shown: it is a secret)")
    assert "at least 16 characters" in message
    assert SECRET_TOKEN[:5] not in message and "short" not in message


def test_every_secret_setting_is_left_out_of_the_settings_repr():
    settings = load([], {"PINGPROXY_SEND_TOKEN": SECRET_TOKEN})

    assert settings.send_tokens == (SECRET_TOKEN,)
    assert SECRET_TOKEN not in repr(settings) and SECRET_TOKEN not in str(settings)
    for option in OPTIONS:
        if option.secret:
            assert f"{option.name}=" not in repr(settings)
    assert "port=8080" in repr(settings)


def test_the_send_token_and_the_redis_url_are_marked_secret():
    assert [option.name for option in OPTIONS if option.secret] == ["send_tokens", "redis_url"]


@pytest.mark.parametrize(("environ", "message"), [
    ({"PORT": "abc"}, "PORT: invalid value 'abc': expected a port number, 1 to 65535"),
    ({"PINGPROXY_PORT": "0"}, "PINGPROXY_PORT: invalid value '0': expected a port number, 1 to "
                              "65535"),
    ({"PINGPROXY_MAX_BODY": "1.5"}, "PINGPROXY_MAX_BODY: invalid value '1.5': expected a whole "
                                    "number of 1 or more"),
    ({"PINGPROXY_TIMEOUT": "abc"}, "PINGPROXY_TIMEOUT: invalid value 'abc': expected a number "
                                   "greater than 0"),
    ({"PINGPROXY_DISCOVERY_CACHE_SECONDS": "soon"},
     "PINGPROXY_DISCOVERY_CACHE_SECONDS: invalid value 'soon': expected a number of 0 or more"),
    ({"PINGPROXY_MAX_PER_ENDPOINT_HOST": "-1"},
     "PINGPROXY_MAX_PER_ENDPOINT_HOST: invalid value '-1': expected a whole number of 0 or more"),
    ({"PINGPROXY_ALLOWED_PORTS": "80,http"},
     "PINGPROXY_ALLOWED_PORTS: invalid value '80,http': 'http' is not a port number, 1 to 65535"),
])
def test_a_numeric_setting_says_what_it_expects(environ, message):
    with pytest.raises(ConfigError) as caught:
        load([], environ)

    assert str(caught.value) == message


NUMERIC_OPTIONS = [option for option in OPTIONS
                   if isinstance(getattr(Settings(), option.name), int | float)
                   and not isinstance(getattr(Settings(), option.name), bool)]


@pytest.mark.parametrize("option", NUMERIC_OPTIONS, ids=lambda option: option.flag)
def test_no_numeric_setting_answers_in_pythons_words(option):
    with pytest.raises(ConfigError) as caught:
        load([], {option.environment[0]: "abc"}, _command_of(option))

    message = str(caught.value)
    assert "invalid literal" not in message and "could not convert" not in message
    assert "expected a " in message
