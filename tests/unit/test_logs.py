"""JSON log lines: their shape, the masking of every message, the correlation id and what is refused as one."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import sys
import warnings
from typing import Any, Dict, Iterator, List

import pytest
from sanic import Sanic
from sanic.log import LOGGING_CONFIG_DEFAULTS

from bot import logs
from bot.settings import SettingsError, load_settings

HOSTILE_IDS = [
    "short",  # under 8 characters
    "a" * 65,  # over 64
    "abc def 12345",
    'abc-123\n{"level": "CRITICAL", "message": "forged"}',  # a forged second line
    "abcdefgh\r\nX-Injected: 1",
    "../../etc/passwd",
    "订单-12345678",
    "abcd_efgh_1234",
    "abcdefgh\u200b",
    "",
    None,
    12345678,
    ["abcdefgh1234"],
    {"id": "abcdefgh1234"},
]


def json_logger(service: str = "crm") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(service))
    logger = logging.getLogger(f"test.logs.{service}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream: io.StringIO) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_message_service_and_correlation_id() -> None:
    logger, stream = json_logger("actions")
    with logs.correlated("req-0123456789abcdef") as correlation:
        logger.info("actions.request method=%s status=%d", "POST", 200)
    logger.warning("outside any turn")
    inside, outside = lines(stream)
    assert correlation == "req-0123456789abcdef"
    assert inside == {"time": inside["time"], "level": "INFO", "logger": "test.logs.actions",
                      "message": "actions.request method=POST status=200", "service": "actions", "correlation_id": correlation}
    assert inside["time"].endswith("Z")
    moment = dt.datetime.fromisoformat(inside["time"].removesuffix("Z") + "+00:00")
    assert moment.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - moment).total_seconds()) < 3600
    assert outside["level"] == "WARNING" and "correlation_id" not in outside


def test_every_message_and_traceback_is_masked() -> None:
    logger, stream = json_logger()
    logger.info("shopper wrote %s", "我的手机号是13812345678，地址北京市朝阳区建国路88号3单元502，邮箱zhang.san@example.com")
    try:
        raise ValueError("lookup failed for 13912345678")
    except ValueError:
        logger.exception("failed for %s", "身份证110101199003071234")
    text = stream.getvalue()
    assert "13812345678" not in text and "13912345678" not in text and "建国路88号" not in text
    assert "zhang.san@" not in text and "110101199003071234" not in text
    first, second = lines(stream)
    assert "138****5678" in first["message"] and "北京市朝阳区****" in first["message"]
    assert "139****5678" in second["exception"] and "Traceback" in second["exception"]


def test_a_record_that_breaks_the_line_or_its_format_still_gives_one_line() -> None:
    logger, stream = json_logger()
    logger.info("two\nlines \"quoted\" %s", "\u2028中文")
    logger.info("wrong %d format", "not a number")
    first, second = lines(stream)
    assert first["message"] == "two\nlines \"quoted\" \u2028中文"
    assert second["message"].startswith("wrong %d format")


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_a_hostile_request_id_is_refused_and_replaced(hostile: Any) -> None:
    assert logs.valid_correlation_id(hostile) is None
    logger, stream = json_logger()
    with logs.correlated(hostile) as correlation:
        assert correlation != hostile and logs.REQUEST_ID_PATTERN.fullmatch(correlation)
        logger.info("request")
    (line,) = lines(stream)
    assert line["correlation_id"] == correlation
    if isinstance(hostile, str) and len(hostile) > 4:
        assert hostile not in stream.getvalue()


@pytest.mark.parametrize("good", ["abcdefgh", "A" * 64, "3f2b9c1e-8d4a-4f6b-9e2d-1c0a7b5e4d3f", "req-20261204-0001"])
def test_a_request_id_of_the_pattern_is_kept(good: str) -> None:
    with logs.correlated(good) as correlation:
        assert correlation == good == logs.correlation_id()
        assert logs.with_request_id({"X-API-Key": "k"}) == {"X-API-Key": "k", "X-Request-ID": good}
    assert logs.correlation_id() is None
    assert logs.with_request_id({"X-API-Key": "k"}) == {"X-API-Key": "k"} and logs.with_request_id(None) is None


def test_the_action_servers_id_is_read_from_the_latest_messages_metadata_only_when_valid() -> None:
    def call(metadata: Any) -> Dict[str, Any]:
        return {"next_action": "action_track_order", "tracker": {"latest_message": {"metadata": metadata}}}

    assert logs.correlation_of_action_call(call({"correlation_id": "abcdef12-3456"})) == "abcdef12-3456"
    for hostile in HOSTILE_IDS:
        assert logs.correlation_of_action_call(call({"correlation_id": hostile})) is None
    for shape in (None, [], "x", {"tracker": None}, {"tracker": {"latest_message": []}}, call(None), call(["correlation_id"])):
        assert logs.correlation_of_action_call(shape) is None


def test_a_turn_keeps_the_id_it_was_given_or_makes_one() -> None:
    with logs.correlated("given-id-1234"):
        assert logs.turn_correlation_id() == "given-id-1234"
    token = logs._CORRELATION.set(None)
    try:
        made = logs.turn_correlation_id()
        assert logs.REQUEST_ID_PATTERN.fullmatch(made) and logs.turn_correlation_id() == made
    finally:
        logs._CORRELATION.reset(token)


@pytest.fixture()
def process_logging() -> Iterator[None]:
    """Put back what configure_logging changes in this process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sanic_defaults = dict(LOGGING_CONFIG_DEFAULTS["loggers"])
    sanic_handlers = {name: list(logging.getLogger(name).handlers) for name in logs.SANIC_LOGGERS}
    hook = sys.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    LOGGING_CONFIG_DEFAULTS["loggers"] = sanic_defaults
    for name, kept in sanic_handlers.items():
        logging.getLogger(name).handlers[:] = kept
    sys.excepthook = hook
    logging.captureWarnings(False)


def test_configure_logging_puts_every_logger_sanic_and_warnings_on_json_lines(process_logging: None,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    handler = logs.configure_logging("desk", "JSON")
    assert logging.getLogger().handlers == [handler]
    Sanic("test_logs_made_after")  # Sanic configures its loggers when an app is made
    for name in logs.SANIC_LOGGERS:
        assert logging.getLogger(name).handlers == [] and logging.getLogger(name).propagate
    logging.getLogger("sanic.root").warning("worker for 13812345678")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated here", UserWarning, stacklevel=1)
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["service"]) for line in written] == [("sanic.root", "desk"), ("py.warnings", "desk")]
    assert written[0]["message"] == "worker for 138****5678"


def test_text_stays_the_default_and_an_unknown_format_is_refused(process_logging: None) -> None:
    assert load_settings({}).log_format == "text" and load_settings({"LOG_FORMAT": "json"}).log_format == "json"
    handler = logs.configure_logging("crm", "text", text_format="%(name)s: %(message)s")
    assert not isinstance(handler.formatter, logs.JsonFormatter)
    with pytest.raises(SettingsError, match="LOG_FORMAT='yaml'"):
        logs.configure_logging("crm", "yaml")
