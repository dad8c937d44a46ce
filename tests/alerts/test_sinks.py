"""The sinks over real HTTP on loopback: what Slack, PagerDuty and a webhook receive, field
by field; the signature; which answers are final and which are worth a retry; and that no
secret (URL credentials, Slack's path token, a query token, the routing key, the signing
secret) shows in a repr, a name, a log line or an error."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
import traceback
from typing import Any

import alerting
import pytest
from alerting import (
    QUERY_TOKEN,
    ROUTING_KEY,
    SECRETS,
    SIGNING_SECRET,
    SLACK_PATH,
    SLACK_TOKEN,
    URL_PASSWORD,
    budget_event,
)

from majordomo_log._exceptions import ConfigError
from majordomo_log.alerts import payloads
from majordomo_log.alerts.sinks import (
    SIGNATURE_HEADER,
    AlertSink,
    LogAlert,
    PagerDutyAlert,
    SinkError,
    SlackAlert,
    TransientSinkError,
    WebhookAlert,
    sign_payload,
    verify_signature,
)
from majordomo_log.testing.receiver import AlertReceiver

# The shared fixtures (alerting.py says why it is not a conftest.py).
fresh_warnings = alerting.fresh_warnings
receiver = alerting.receiver


def send_error(sink: Any) -> SinkError:
    with pytest.raises(SinkError) as caught:
        sink.send(budget_event())
    return caught.value


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# -- Slack ----------------------------------------------------------------------------------


def test_slack_gets_a_fallback_text_and_blocks(receiver: AlertReceiver) -> None:
    SlackAlert(receiver.url + SLACK_PATH).send(budget_event())

    (request,) = receiver.requests
    assert request.method == "POST" and request.path == SLACK_PATH
    assert request.headers["content-type"].startswith("application/json")
    message = request.json
    assert set(message) == {"text", "blocks"}
    assert message["text"] == ":warning: Budget '$5.00 per day by user_id' at 80% for user_id=alice"
    header, section, context = message["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Budget '$5.00 per day by user_id' at 80% for user_id=alice",
            "emoji": True,
        },
    }
    assert section["type"] == "section"
    assert all(field["type"] == "mrkdwn" for field in section["fields"])
    assert [field["text"] for field in section["fields"]] == [
        "*Budget*\n$5.00 per day by user_id",
        "*Scope*\nuser_id=alice",
        "*Period*\nday from 2024-05-01 00:00 UTC",
        "*Spend / limit*\n$4.12 / $5.00",
        "*Percent*\n82.5%",
        "*Threshold*\n80%",
        "*Period ends*\n2024-05-02 00:00 UTC",
    ]
    assert context["type"] == "context"
    assert context["elements"][0]["type"] == "mrkdwn"
    assert "budget:day:alice:2024-05-01:0.8" in context["elements"][0]["text"]


def test_slack_caps_and_escapes() -> None:
    event = budget_event(
        title="<!channel> " + "x" * 400,
        budget="ops & <!here>",
        details={f"figure_{n}": "&" * 3000 for n in range(12)},
    )
    message = payloads.slack_message(event)
    header, section, _ = message["blocks"]
    assert len(header["text"]["text"]) <= 150
    assert "<!channel>" not in message["text"] and "&lt;!channel&gt;" in message["text"]
    assert section["fields"][0]["text"] == "*Budget*\nops &amp; &lt;!here&gt;"
    assert len(section["fields"]) == 10
    assert all(len(field["text"]) <= 2000 for field in section["fields"])


def test_slack_answers_ok_is_delivered_and_its_refusals_are_final(
    receiver: AlertReceiver,
) -> None:
    sink = SlackAlert(receiver.url + SLACK_PATH)
    sink.send(budget_event())  # 200 "ok"
    for status, reason in ((400, "invalid_payload"), (404, "no_service"), (410, "gone")):
        receiver.fail_next(status=status, body=reason)
        error = send_error(sink)
        assert not error.transient and error.status == status
        assert str(error) == f"{receiver.url}: HTTP {status} ({reason})"


# -- PagerDuty ------------------------------------------------------------------------------


def test_pagerduty_gets_an_events_v2_trigger() -> None:
    with AlertReceiver(status=202, body='{"status":"success"}') as receiver:
        sink = PagerDutyAlert(ROUTING_KEY, url=receiver.url + "/v2/enqueue", source="api-7")
        sink.send(budget_event())
        (request,) = receiver.requests

    assert request.path == "/v2/enqueue"
    event = request.json
    assert set(event) == {"routing_key", "event_action", "dedup_key", "client", "payload"}
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "budget:day:alice:2024-05-01:0.8"
    assert event["client"] == "majordomo-log"
    payload = event["payload"]
    assert payload["summary"] == "Budget '$5.00 per day by user_id' at 80% for user_id=alice"
    assert payload["source"] == "api-7"
    assert payload["severity"] == "warning"
    assert payload["timestamp"] == "2024-05-01T15:30:00+00:00"
    assert dt.datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["component"] == "$5.00 per day by user_id"
    assert payload["group"] == "majordomo-log"
    assert payload["class"] == "budget"
    assert payload["custom_details"] == {
        "Budget": "$5.00 per day by user_id",
        "Scope": "user_id=alice",
        "Period": "day from 2024-05-01 00:00 UTC",
        "Spend / limit": "$4.12 / $5.00",
        "Percent": "82.5%",
        "Threshold": "80%",
        "Period ends": "2024-05-02 00:00 UTC",
        "kind": "budget",
        "dedup_key": "budget:day:alice:2024-05-01:0.8",
    }


@pytest.mark.parametrize(
    ("severity", "sent"),
    [("critical", "critical"), ("warning", "warning"), ("info", "info"), ("odd", "warning")],
)
def test_pagerduty_severity_is_one_it_accepts(severity: str, sent: str) -> None:
    event = payloads.pagerduty_event(budget_event(severity=severity), ROUTING_KEY, "host")
    assert event["payload"]["severity"] == sent
    assert sent in ("critical", "error", "warning", "info")


def test_pagerduty_caps_summary_and_dedup_key() -> None:
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    first = payloads.pagerduty_event(budget_event(long_a, title="t" * 5000), ROUTING_KEY, "h")
    second = payloads.pagerduty_event(budget_event(long_b), ROUTING_KEY, "h")
    assert len(first["payload"]["summary"]) == 1024
    assert len(first["dedup_key"]) == len(second["dedup_key"]) == 255
    assert first["dedup_key"] != second["dedup_key"]  # same start, still two incidents
    assert first["payload"]["custom_details"]["dedup_key"] == long_a


def test_pagerduty_202_is_accepted_and_400_final() -> None:
    with AlertReceiver(status=202) as receiver:
        sink = PagerDutyAlert(ROUTING_KEY, url=receiver.url + "/v2/enqueue")
        sink.send(budget_event())
        receiver.fail_next(status=400, body=f'{{"message":"Invalid routing key {ROUTING_KEY}"}}')
        error = send_error(sink)
    assert not error.transient and error.status == 400
    assert_no_secret(str(error))  # the key the answer echoed is scrubbed
    assert "Invalid routing key ***" in str(error)


# -- webhook and its signature ----------------------------------------------------------


def test_webhook_posts_the_event_as_json_signed(receiver: AlertReceiver) -> None:
    event = budget_event()
    WebhookAlert(receiver.url + "/hooks/alerts", secret=SIGNING_SECRET).send(event)

    (request,) = receiver.requests
    assert request.json == {"source": "majordomo-log", **event.to_dict()}
    header = request.headers[SIGNATURE_HEADER.lower()]
    assert header.startswith("t=") and ",v1=" in header
    assert verify_signature(request.body, header, SIGNING_SECRET)
    assert abs(int(header[2:].split(",")[0]) - time.time()) < 60


def test_webhook_without_secret_is_unsigned(receiver: AlertReceiver) -> None:
    WebhookAlert(receiver.url).send(budget_event())
    assert SIGNATURE_HEADER.lower() not in receiver.requests[0].headers


def test_signature_fails_with_a_wrong_secret_a_tampered_body_or_an_old_timestamp() -> None:
    body = b'{"kind":"budget","spend":"4.12"}'
    header = sign_payload(body, SIGNING_SECRET)
    assert verify_signature(body, header, SIGNING_SECRET)
    assert verify_signature(body, header, SIGNING_SECRET.encode())
    assert not verify_signature(body, header, "another-secret")
    assert not verify_signature(body.replace(b"4.12", b"0.01"), header, SIGNING_SECRET)

    old = int(time.time()) - 301
    stale = sign_payload(body, SIGNING_SECRET, timestamp=old)
    assert not verify_signature(body, stale, SIGNING_SECRET)
    assert verify_signature(body, stale, SIGNING_SECRET, tolerance=None)
    assert verify_signature(body, stale, SIGNING_SECRET, now=old + 10)
    # The timestamp is signed: moving it forward breaks the signature.
    forged = stale.replace(f"t={old}", f"t={int(time.time())}")
    assert not verify_signature(body, forged, SIGNING_SECRET)


def test_signature_header_rotation_and_garbage() -> None:
    body = b"{}"
    header = sign_payload(body, SIGNING_SECRET, timestamp=1_700_000_000)
    rotated = header.replace("v1=", "v1=" + "0" * 64 + ",v1=")
    assert verify_signature(body, rotated, SIGNING_SECRET, now=1_700_000_000)
    for garbage in ("", "t=,v1=", "v1=ab", "t=1,t=2,v1=ab", "t=１,v1=aa", "t=1,v1=é", None):
        assert not verify_signature(body, garbage, SIGNING_SECRET)  # type: ignore[arg-type]


# -- what is retried --------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_timeouts_and_rate_limits_are_transient(
    receiver: AlertReceiver, status: int
) -> None:
    receiver.fail_next(status=status)
    error = send_error(WebhookAlert(receiver.url))
    assert error.transient and isinstance(error, TransientSinkError) and error.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_client_errors_are_final(receiver: AlertReceiver, status: int) -> None:
    receiver.fail_next(status=status)
    error = send_error(WebhookAlert(receiver.url))
    assert not error.transient and error.status == status


def test_retry_after_is_read_in_seconds_or_as_a_date(receiver: AlertReceiver) -> None:
    sink = WebhookAlert(receiver.url)
    receiver.fail_next(status=429, headers={"Retry-After": "7"})
    assert send_error(sink).retry_after == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    receiver.fail_next(status=503, headers={"Retry-After": later})
    retry_after = send_error(sink).retry_after
    assert retry_after is not None and 25 <= retry_after <= 31
    receiver.fail_next(status=503, headers={"Retry-After": "soon"})
    assert send_error(sink).retry_after is None


def test_a_redirect_is_not_followed(receiver: AlertReceiver) -> None:
    receiver.fail_next(status=302, headers={"Location": receiver.url + "/elsewhere"})
    error = send_error(WebhookAlert(receiver.url + "/hook"))
    assert not error.transient and "redirects are not followed" in str(error)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_refused_connection_and_a_timeout_are_transient(receiver: AlertReceiver) -> None:
    url = receiver.url + SLACK_PATH
    receiver.down()
    refused = send_error(SlackAlert(url))
    assert refused.transient and refused.status is None
    assert str(refused).startswith(f"{receiver.url}: could not connect (ConnectionRefused")
    receiver.up()
    receiver.delay = 2.0
    started = time.monotonic()
    slow = send_error(SlackAlert(url, timeout=0.2))
    assert time.monotonic() - started < 1.5
    assert slow.transient and str(slow) == f"{receiver.url}: no answer within 0.2s"


# -- secrets ----------------------------------------------------------------------------


def secret_url(receiver: AlertReceiver) -> str:
    host = receiver.url.removeprefix("http://")
    return f"http://alerts:{URL_PASSWORD}@{host}{SLACK_PATH}?token={QUERY_TOKEN}&x=1"


def test_url_credentials_are_sent_but_never_shown(
    receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="majordomo_log")
    sinks = [
        WebhookAlert(secret_url(receiver), secret=SIGNING_SECRET),
        SlackAlert(secret_url(receiver)),
        PagerDutyAlert(ROUTING_KEY, url=secret_url(receiver)),
    ]
    for sink in sinks:
        sink.send(budget_event())
        assert_no_secret(repr(sink), sink.name, str(vars(sink).get("name")))
        assert sink.name.endswith(receiver.url)
    request = receiver.requests[0]
    assert request.path == SLACK_PATH and request.query == {"token": QUERY_TOKEN, "x": "1"}
    assert request.headers["authorization"].startswith("Basic ")  # the URL's user:password

    # Refusals that echo the URL, a refused connection, a timeout: none shows a secret.
    errors = []
    for sink, own_secret in zip(sinks, (SIGNING_SECRET, "", ROUTING_KEY), strict=True):
        receiver.answer(400, body=f"bad request to {secret_url(receiver)} {own_secret}")
        errors.append(send_error(sink))
    receiver.down()
    errors += [send_error(sink) for sink in sinks]
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None
        shown = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        assert_no_secret(str(error), repr(error), shown)
        assert receiver.url in str(error)
    assert_no_secret(caplog.text)


def test_bad_urls_and_options_fail_at_configuration_without_quoting_the_url() -> None:
    bad_urls = [
        f"ftp://host/{SLACK_TOKEN}",
        f"hooks.slack.com{SLACK_PATH}",
        f"user:{URL_PASSWORD}@host/x",
        "http://",
        f"https://host:99999/{SLACK_TOKEN}",
        f"https://host/{SLACK_TOKEN} x",
        f"https://host/{SLACK_TOKEN}\n",
        "",
        None,
    ]
    for url in bad_urls:
        for make in (WebhookAlert, SlackAlert, lambda u: PagerDutyAlert(ROUTING_KEY, url=u)):
            with pytest.raises(ConfigError) as caught:
                make(url)
            assert_no_secret(str(caught.value))
    for options in ({"timeout": 0}, {"timeout": -1}, {"timeout": float("nan")}):
        with pytest.raises(ConfigError):
            SlackAlert("https://hooks.slack.com/x", **options)
    with pytest.raises(ConfigError):
        WebhookAlert("https://example.com/hook", secret="")
    for key in ("", "  ", f"{ROUTING_KEY} x", None):
        with pytest.raises(ConfigError) as caught:
            PagerDutyAlert(key)  # type: ignore[arg-type]
        assert_no_secret(str(caught.value))


# -- the log sink, and user sinks --------------------------------------------------------


def test_log_alert_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="majordomo_log")
    LogAlert().send(budget_event(title="two\nlines"))
    LogAlert(level="ERROR").send(budget_event())
    first, second = caplog.records
    assert first.name == "majordomo_log" and first.levelno == logging.WARNING
    assert second.levelno == logging.ERROR
    line = first.getMessage()
    assert "\n" not in line and "two lines" in line
    assert "Spend / limit: $4.12 / $5.00" in line and "Threshold: 80%" in line
    assert line.endswith("dedup_key=budget:day:alice:2024-05-01:0.8")
    with pytest.raises(ConfigError):
        LogAlert(level="NOT_A_LEVEL")


def test_log_alert_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("handler broke")

    monkeypatch.setattr(logging.getLogger("majordomo_log"), "log", broken)
    LogAlert().send(budget_event())


def test_every_sink_is_an_alert_sink_and_so_is_a_users() -> None:
    class Mine:
        name = "mine"

        def send(self, event: object) -> None:
            pass

    for sink in (
        WebhookAlert("https://example.com/hook"),
        SlackAlert("https://hooks.slack.com/services/T/B/X"),
        PagerDutyAlert(ROUTING_KEY),
        LogAlert(),
        Mine(),
    ):
        assert isinstance(sink, AlertSink)
