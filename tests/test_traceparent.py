"""W3C trace context: parsing ``traceparent``/``tracestate`` (from strings and header collections),
continuing an incoming trace, and the headers a transaction or span propagates downstream."""

import pytest
from conftest import exported

import oxapm
from oxapm.utils.disttracing import TraceParent, TracingOptions

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
VALID = "00-%s-%s-01" % (TRACE_ID, SPAN_ID)
UNSAMPLED = "00-%s-%s-00" % (TRACE_ID, SPAN_ID)
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"


# --- trace_parent_from_string -------------------------------------------------------------------


def test_from_string_fields():
    tp = oxapm.trace_parent_from_string(VALID)
    assert isinstance(tp, TraceParent)
    assert tp.version == 0
    assert tp.trace_id == TRACE_ID
    assert tp.span_id == SPAN_ID
    assert tp.trace_options.recorded is True
    assert tp.tracestate is None
    assert tp.is_legacy is False


def test_from_string_round_trip():
    for header in (VALID, UNSAMPLED, "00-%s-%s-03" % (TRACE_ID, SPAN_ID)):
        tp = oxapm.trace_parent_from_string(header)
        assert tp.to_string() == header
        assert tp.to_ascii() == header.encode("ascii")


def test_recorded_flag():
    assert oxapm.trace_parent_from_string(UNSAMPLED).trace_options.recorded is False
    # Only bit 0 is the sampled flag; other bits are kept but do not change it.
    assert oxapm.trace_parent_from_string("00-%s-%s-02" % (TRACE_ID, SPAN_ID)).trace_options.recorded is False
    assert oxapm.trace_parent_from_string("00-%s-%s-03" % (TRACE_ID, SPAN_ID)).trace_options.recorded is True


def test_from_string_with_tracestate():
    tp = oxapm.trace_parent_from_string(VALID, "es=s:0.5,rojo=00f067aa0ba902b7")
    assert tp.tracestate == "es=s:0.5,rojo=00f067aa0ba902b7"
    assert tp.tracestate_dict == {"s": "0.5"}


def test_a_future_version_with_extra_fields_is_accepted():
    # W3C: a higher version may append fields after a dash; parse what version 00 defines.
    tp = oxapm.trace_parent_from_string("cc-%s-%s-01-what-the-future-will-be-like" % (TRACE_ID, SPAN_ID))
    assert tp is not None
    assert (tp.trace_id, tp.span_id, tp.trace_options.recorded) == (TRACE_ID, SPAN_ID, True)


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("garbage", id="garbage"),
    pytest.param("ff-%s-%s-01" % (TRACE_ID, SPAN_ID), id="version-ff"),
    pytest.param("0g-%s-%s-01" % (TRACE_ID, SPAN_ID), id="version-not-hex"),
    pytest.param("0-%s-%s-01" % (TRACE_ID, SPAN_ID), id="version-too-short"),
    pytest.param("000-%s-%s-01" % (TRACE_ID, SPAN_ID), id="version-too-long"),
    pytest.param("00-%s-%s-01" % (TRACE_ID[:-1], SPAN_ID), id="trace-id-too-short"),
    pytest.param("00-%s0-%s-01" % (TRACE_ID, SPAN_ID), id="trace-id-too-long"),
    pytest.param("00-%s-%s-01" % (TRACE_ID, SPAN_ID[:-1]), id="span-id-too-short"),
    pytest.param("00-%s-%s0-01" % (TRACE_ID, SPAN_ID), id="span-id-too-long"),
    pytest.param("00-%s-%s-1" % (TRACE_ID, SPAN_ID), id="flags-too-short"),
    pytest.param("00-%s-%s-011" % (TRACE_ID, SPAN_ID), id="flags-too-long"),
    pytest.param("00-%s-%s-01-extra" % (TRACE_ID, SPAN_ID), id="version-00-with-extra-field"),
    pytest.param("cc-%s-%s-01extra" % (TRACE_ID, SPAN_ID), id="future-version-without-dash"),
    pytest.param("00-%s-%s-01" % (TRACE_ID.upper(), SPAN_ID), id="upper-case-trace-id"),
    pytest.param("00-%s-%s-01" % (TRACE_ID, SPAN_ID.upper()), id="upper-case-span-id"),
    pytest.param("0A-%s-%s-01" % (TRACE_ID, SPAN_ID), id="upper-case-version"),
    pytest.param("00-%s-%s-0A" % (TRACE_ID, SPAN_ID), id="upper-case-flags"),
    pytest.param("00-%s-%s-01" % ("0" * 32, SPAN_ID), id="all-zero-trace-id"),
    pytest.param("00-%s-%s-01" % (TRACE_ID, "0" * 16), id="all-zero-span-id"),
    pytest.param("00_%s-%s-01" % (TRACE_ID, SPAN_ID), id="bad-separator-1"),
    pytest.param("00-%s_%s-01" % (TRACE_ID, SPAN_ID), id="bad-separator-2"),
    pytest.param("00-%s-%s.01" % (TRACE_ID, SPAN_ID), id="bad-separator-3"),
    pytest.param("00%s%s01xxx" % (TRACE_ID, SPAN_ID), id="no-separators"),
    pytest.param("00-%s-%s-0g" % (TRACE_ID, SPAN_ID), id="flags-not-hex"),
    pytest.param("00-%s-%s-zz" % (TRACE_ID, SPAN_ID), id="flags-not-hex-2"),
    pytest.param("00-%sxy-%s-01" % (TRACE_ID[:-2], SPAN_ID), id="trace-id-not-hex"),
    pytest.param("00-%s-%sxy-01" % (TRACE_ID, SPAN_ID[:-2]), id="span-id-not-hex"),
    pytest.param("00-%s\u00e9-%s-01" % (TRACE_ID[:-1], SPAN_ID), id="non-ascii"),
    pytest.param(None, id="none"),
    pytest.param(123, id="int"),
    pytest.param(VALID.encode("ascii"), id="bytes"),
    pytest.param([VALID], id="list"),
    pytest.param(object(), id="object"),
]


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_traceparent_is_none(header):
    assert oxapm.trace_parent_from_string(header) is None


@pytest.mark.parametrize("header", [p for p in MALFORMED if p.id not in ("bytes", "list")])
def test_malformed_traceparent_header_is_none(header):
    assert oxapm.trace_parent_from_headers({"traceparent": header, "tracestate": "es=s:0.5"}) is None


def test_malformed_tracestate_does_not_invalidate_traceparent():
    tp = oxapm.trace_parent_from_string(VALID, "this is not, a=valid=tracestate,,")
    assert tp is not None and tp.trace_id == TRACE_ID
    assert not tp.tracestate  # nothing valid survived
    assert tp.tracestate_dict == {}


def test_non_string_tracestate_is_ignored():
    tp = oxapm.trace_parent_from_string(VALID, 42)
    assert tp is not None and tp.tracestate is None


# --- trace_parent_from_headers ------------------------------------------------------------------


def test_from_headers_with_tracestate():
    tp = oxapm.trace_parent_from_headers({"traceparent": VALID, "tracestate": "es=s:0.5,rojo=00f067aa0ba902b7"})
    assert (tp.trace_id, tp.span_id, tp.trace_options.recorded) == (TRACE_ID, SPAN_ID, True)
    assert tp.tracestate == "es=s:0.5,rojo=00f067aa0ba902b7"
    assert tp.is_legacy is False


def test_from_headers_legacy_only():
    tp = oxapm.trace_parent_from_headers({"elastic-apm-traceparent": VALID, "tracestate": "es=s:0.25"})
    assert tp is not None
    assert (tp.trace_id, tp.span_id) == (TRACE_ID, SPAN_ID)
    assert tp.is_legacy is True
    assert tp.tracestate_dict == {"s": "0.25"}


def test_traceparent_is_preferred_over_legacy():
    tp = oxapm.trace_parent_from_headers({"elastic-apm-traceparent": OTHER, "traceparent": VALID})
    assert (tp.trace_id, tp.span_id) == (TRACE_ID, SPAN_ID)
    assert tp.is_legacy is False
    tp = oxapm.trace_parent_from_headers([("elastic-apm-traceparent", OTHER), ("traceparent", VALID)])
    assert tp.trace_id == TRACE_ID


def test_no_trace_headers():
    assert oxapm.trace_parent_from_headers({}) is None
    assert oxapm.trace_parent_from_headers({"tracestate": "es=s:1", "content-type": "text/plain"}) is None


@pytest.mark.parametrize("headers", [None, 42, "traceparent", [1, 2, 3], [("traceparent",)], object()])
def test_unusable_header_containers_give_none(headers):
    assert oxapm.trace_parent_from_headers(headers) is None


@pytest.mark.parametrize("name", ["traceparent", "Traceparent", "TraceParent", "TRACEPARENT"])
def test_header_names_in_any_case(name):
    tp = oxapm.trace_parent_from_headers({name: VALID, "TraceState": "es=s:0.5"})
    assert tp is not None and tp.trace_id == TRACE_ID
    assert tp.tracestate == "es=s:0.5"


def test_legacy_header_name_in_any_case():
    tp = oxapm.trace_parent_from_headers({"Elastic-Apm-Traceparent": VALID})
    assert tp is not None and tp.is_legacy


def test_headers_as_list_of_pairs():
    tp = oxapm.trace_parent_from_headers([("Traceparent", VALID), ("Tracestate", "es=s:0.5")])
    assert tp.trace_id == TRACE_ID and tp.tracestate == "es=s:0.5"


def test_a_single_element_list_value_is_fine():
    tp = oxapm.trace_parent_from_headers({"traceparent": [VALID]})
    assert tp is not None and tp.trace_id == TRACE_ID


def test_duplicated_traceparent_as_list_value_is_invalid():
    assert oxapm.trace_parent_from_headers({"traceparent": [VALID, VALID]}) is None
    assert oxapm.trace_parent_from_headers({"traceparent": [VALID, OTHER]}) is None


def test_duplicated_traceparent_in_pairs_is_invalid():
    assert oxapm.trace_parent_from_headers([("traceparent", VALID), ("traceparent", VALID)]) is None
    assert oxapm.trace_parent_from_headers([("traceparent", VALID), ("TraceParent", OTHER)]) is None


def test_several_tracestate_headers_are_one_list():
    tp = oxapm.trace_parent_from_headers(
        [("traceparent", VALID), ("tracestate", "es=s:0.5"), ("tracestate", "rojo=00f067aa0ba902b7")]
    )
    assert tp.tracestate == "es=s:0.5,rojo=00f067aa0ba902b7"
    tp = oxapm.trace_parent_from_headers({"traceparent": VALID, "tracestate": ["es=s:0.5", "congo=t61rcWkgMzE"]})
    assert tp.tracestate == "es=s:0.5,congo=t61rcWkgMzE"


def test_bytes_header_values():
    tp = oxapm.trace_parent_from_headers({"traceparent": VALID.encode("ascii"), "tracestate": b"es=s:0.5"})
    assert tp is not None and tp.tracestate_dict == {"s": "0.5"}


# --- tracestate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_member",
    [
        "Upper=1",  # keys are lower case
        "1abc=1",  # a simple key starts with a letter
        "bad key=1",  # no spaces in keys
        "novalue=",  # empty value
        "noequals",  # not key=value
        "=nokey",  # empty key
        "k=a=b",  # '=' not allowed in values
        "k=" + "x" * 257,  # value longer than 256
        "k=\x01ctl",  # control character
        "a" * 257 + "=1",  # key longer than 256
    ],
)
def test_a_tracestate_with_an_invalid_member_is_discarded_whole(bad_member):
    # As the W3C trace-context test suite expects.
    tp = oxapm.trace_parent_from_string(VALID, "es=s:0.5,%s,rojo=00f067aa0ba902b7" % bad_member)
    assert tp is not None and not tp.tracestate


def test_valid_tracestate_key_forms_are_kept():
    state = "es=s:1,a-b_c*d/e=1,tenant1@vendor=x,0tenant@sys=y"
    assert oxapm.trace_parent_from_string(VALID, state).tracestate == state


def test_a_tracestate_with_a_repeated_key_is_discarded_whole():
    assert not oxapm.trace_parent_from_string(VALID, "rojo=1,congo=2,rojo=3").tracestate


def test_tracestate_dict_reads_the_es_entry():
    tp = oxapm.trace_parent_from_string(VALID, "rojo=00f067aa0ba902b7,es=s:0.25;x:y,congo=t61rcWkgMzE")
    assert tp.tracestate_dict == {"s": "0.25", "x": "y"}
    assert oxapm.trace_parent_from_string(VALID, "rojo=1").tracestate_dict == {}
    assert oxapm.trace_parent_from_string(VALID).tracestate_dict == {}


def test_add_tracestate_creates_the_es_entry_first():
    tp = oxapm.trace_parent_from_string(VALID, "rojo=00f067aa0ba902b7")
    tp.add_tracestate("s", "0.5")
    assert tp.tracestate == "es=s:0.5,rojo=00f067aa0ba902b7"
    assert tp.tracestate_dict == {"s": "0.5"}


def test_add_tracestate_updates_and_extends_the_es_entry():
    tp = oxapm.trace_parent_from_string(VALID, "rojo=1,es=s:0.5")
    tp.add_tracestate("s", "0.25")
    tp.add_tracestate("x", "y")
    assert tp.tracestate_dict == {"s": "0.25", "x": "y"}
    members = tp.tracestate.split(",")
    assert members[0].startswith("es=") and "rojo=1" in members
    assert [m for m in members if m.startswith("es=")] == [members[0]]


def test_add_tracestate_without_tracestate():
    tp = oxapm.trace_parent_from_string(VALID)
    tp.add_tracestate("s", 1)
    assert tp.tracestate == "es=s:1"


def test_copy_from_and_new():
    tp = oxapm.trace_parent_from_string(VALID, "es=s:1")
    copy = tp.copy_from(span_id="1234567890abcdef", trace_options=TracingOptions(recorded=False))
    assert copy.to_string() == "00-%s-1234567890abcdef-00" % TRACE_ID
    assert copy.tracestate == "es=s:1"
    assert tp.to_string() == VALID  # the original is untouched
    assert TraceParent.new(TRACE_ID, SPAN_ID, sampled=False).to_string() == UNSAMPLED


# --- continuing a trace ---------------------------------------------------------------------------


def test_begin_transaction_continues_the_trace(client):
    parent = oxapm.trace_parent_from_headers({"traceparent": VALID, "tracestate": "es=s:0.5,rojo=00f067aa0ba902b7"})
    transaction = client.begin_transaction("request", trace_parent=parent)
    assert oxapm.get_trace_id() == TRACE_ID
    assert transaction.parent_id == SPAN_ID
    assert transaction.is_sampled
    with oxapm.capture_span("child"):
        pass
    client.end_transaction("GET /")
    events = exported(client)
    (txn,) = events.transactions
    assert txn["trace_id"] == TRACE_ID
    assert txn["parent_id"] == SPAN_ID
    assert txn["id"] != SPAN_ID
    assert txn["sampled"] is True
    assert txn["sample_rate"] == 0.5
    (span,) = events.spans
    assert span["trace_id"] == TRACE_ID and span["parent_id"] == txn["id"]
    assert span["sample_rate"] == 0.5


def test_continued_transaction_keeps_the_incoming_tracestate(client):
    parent = oxapm.trace_parent_from_string(VALID, "es=s:0.5,rojo=00f067aa0ba902b7")
    transaction = client.begin_transaction("request", trace_parent=parent)
    members = transaction.tracestate.split(",")
    assert members[0] == "es=s:0.5"
    assert "rojo=00f067aa0ba902b7" in members
    client.end_transaction("t")
    exported(client)


def test_legacy_parent_continues_the_trace(client):
    parent = oxapm.trace_parent_from_headers({"elastic-apm-traceparent": VALID})
    client.begin_transaction("request", trace_parent=parent)
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert (txn["trace_id"], txn["parent_id"]) == (TRACE_ID, SPAN_ID)


def test_incoming_unsampled_decision_is_honoured(client):
    assert client.config.transaction_sample_rate == 1.0
    transaction = client.begin_transaction("request", trace_parent=oxapm.trace_parent_from_string(UNSAMPLED))
    assert transaction.is_sampled is False
    with oxapm.capture_span("not-recorded") as span:
        assert span is None
    assert oxapm.get_trace_parent_header() == "00-%s-%s-00" % (TRACE_ID, transaction.id)
    client.end_transaction("t")
    events = exported(client)
    assert events.spans == []
    assert all(t["sampled"] is False and t["trace_id"] == TRACE_ID for t in events.transactions)


def test_incoming_sampled_decision_is_honoured_at_rate_zero():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", transaction_sample_rate=0)
    try:
        transaction = client.begin_transaction("request", trace_parent=oxapm.trace_parent_from_string(VALID, "es=s:1"))
        assert transaction.is_sampled is True
        with oxapm.capture_span("recorded") as span:
            assert span is not None
        client.end_transaction("t")
        events = exported(client)
        (txn,) = events.transactions
        assert txn["sampled"] is True and txn["trace_id"] == TRACE_ID
        assert [s["name"] for s in events.spans] == ["recorded"]
    finally:
        client.close()


def test_sample_rate_is_omitted_without_an_es_entry(client):
    # Elastic's sampling spec: without a valid `s` in the incoming tracestate the rate is unknown.
    client.begin_transaction("request", trace_parent=oxapm.trace_parent_from_string(VALID, "rojo=1"))
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "sample_rate" not in txn


# --- the headers we propagate ---------------------------------------------------------------------


def test_get_trace_parent_header_in_a_transaction(client):
    transaction = client.begin_transaction("request")
    header = oxapm.get_trace_parent_header()
    # Sampled, and (Trace Context Level 2) a random trace id.
    assert header == "00-%s-%s-03" % (transaction.trace_id, transaction.id)
    tp = oxapm.trace_parent_from_string(header)
    assert tp.trace_options.recorded
    assert transaction.trace_parent.to_string() == header
    client.end_transaction("t")
    exported(client)


def test_get_trace_parent_header_in_a_span(client):
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("outgoing") as span:
        assert oxapm.get_trace_parent_header() == "00-%s-%s-03" % (transaction.trace_id, span.id)
        with oxapm.capture_span("inner") as inner:
            assert oxapm.get_trace_parent_header() == "00-%s-%s-03" % (transaction.trace_id, inner.id)
        assert oxapm.get_trace_parent_header() == "00-%s-%s-03" % (transaction.trace_id, span.id)
    assert oxapm.get_trace_parent_header() == "00-%s-%s-03" % (transaction.trace_id, transaction.id)
    client.end_transaction("t")
    exported(client)


def test_get_trace_parent_header_of_a_continued_trace(client):
    client.begin_transaction("request", trace_parent=oxapm.trace_parent_from_string(VALID))
    with oxapm.capture_span("outgoing") as span:
        assert oxapm.get_trace_parent_header() == "00-%s-%s-01" % (TRACE_ID, span.id)
    client.end_transaction("t")
    exported(client)


def test_get_trace_parent_header_outside_a_transaction():
    assert oxapm.get_trace_parent_header() is None


def test_unsampled_root_transaction_header_has_only_the_random_flag():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", transaction_sample_rate=0)
    try:
        transaction = client.begin_transaction("request")
        assert transaction.is_sampled is False
        assert oxapm.get_trace_parent_header() == "00-%s-%s-02" % (transaction.trace_id, transaction.id)
        assert transaction.tracestate == "es=s:0"
        client.end_transaction("t")
        events = exported(client)
        assert events.spans == []
        assert all(t["sampled"] is False for t in events.transactions)
    finally:
        client.close()


def test_root_transaction_tracestate_carries_the_sample_rate(client):
    transaction = client.begin_transaction("request")
    assert transaction.tracestate == "es=s:1"
    assert transaction.trace_parent.tracestate_dict == {"s": "1"}
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert txn["sample_rate"] == 1.0


def test_fractional_sample_rate_in_tracestate():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", transaction_sample_rate=0.5)
    try:
        seen = set()
        for _ in range(60):
            transaction = client.begin_transaction("request")
            expected = "es=s:0.5" if transaction.is_sampled else "es=s:0"
            assert transaction.tracestate == expected
            seen.add(transaction.is_sampled)
            client.end_transaction("t")
        assert seen == {True, False}
        for txn in exported(client).transactions:
            assert txn["sample_rate"] == (0.5 if txn["sampled"] else 0.0)
    finally:
        client.close()


# --- links ----------------------------------------------------------------------------------------


def test_links_on_transaction_and_span(client):
    first = oxapm.trace_parent_from_string(VALID)
    second = oxapm.trace_parent_from_string(OTHER)
    client.begin_transaction("job", links=[first, second])
    with oxapm.capture_span("linked", links=[second]):
        pass
    client.end_transaction("t")
    events = exported(client)
    (txn,) = events.transactions
    assert txn["links"] == [
        {"trace_id": TRACE_ID, "span_id": SPAN_ID},
        {"trace_id": "11111111111111111111111111111111", "span_id": "2222222222222222"},
    ]
    (span,) = events.spans
    assert span["links"] == [{"trace_id": "11111111111111111111111111111111", "span_id": "2222222222222222"}]


def test_links_do_not_change_the_trace(client):
    link = oxapm.trace_parent_from_string(VALID)
    transaction = client.begin_transaction("job", links=[link])
    assert transaction.trace_id != TRACE_ID
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "parent_id" not in txn


def test_no_links_means_no_links_field(client):
    client.begin_transaction("job", links=[])
    with oxapm.capture_span("plain"):
        pass
    client.end_transaction("t")
    events = exported(client)
    assert "links" not in events.transactions[0] and "links" not in events.spans[0]


def test_invalid_links_are_skipped(client):
    bad = TraceParent(0, "not-hex", "nope", TracingOptions(recorded=True))
    client.begin_transaction("job", links=[bad, "garbage", None, oxapm.trace_parent_from_string(VALID)])
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert txn["links"] == [{"trace_id": TRACE_ID, "span_id": SPAN_ID}]


def test_an_empty_traceparent_header_does_not_fall_back_to_the_legacy_header():
    headers = {"traceparent": "", "elastic-apm-traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert oxapm.trace_parent_from_headers(headers) is None
