"""schemathesis hooks of scripts/schemathesis.sh.

The OpenAPI document states every constraint on a single value (types, ranges, lengths, formats,
patterns, enums, required fields). A few rules compare a value with the clock, with another
parameter or with stored data, which JSON Schema cannot state; the document names them in the
descriptions. Schema-valid ("positive") cases that break only such a rule would be answered 400
and reported as rejected valid data, so this hook moves them inside the rule. Negative cases are
left untouched: the server must still refuse them.

  POST /app/events        classId is a class of the catalogue (PORTAL_CLASS_ID, 30 minutes long);
                          startedAt within the last 30 days; watchedSeconds at most the time since
                          startedAt + 60 s and at most 4 x the class's duration.
  POST /partner/vouchers  expiresAt in the future.
  GET /partner/analytics, GET /partner/funnel
                          period or startDate + endDate (start <= end, at most 366 days).
  GET /partner/billing[/export]  month not after the current month.
  GET /partner/audit-log  from not after to.

Two cases, positive or negative, are kept away from the credentials the run itself uses (the
script exports their ids), so that no request takes them away from the requests after it:
  PATCH /partner/staff/{id}     of the signed-in demo admin: its role and active flag are left out
                                (its name may change).
  DELETE /partner/api-keys/{id} of the run's API key: another (unknown) id, answered 404.
"""

import datetime as dt
import os
import uuid

import schemathesis

CLASS_ID = os.environ.get("PORTAL_CLASS_ID", "yoga-flow-1")
ADMIN_ID = os.environ.get("PORTAL_ADMIN_ID", "")
API_KEY_ID = os.environ.get("PORTAL_API_KEY_ID", "")


def _parse_coverage_source_now():
    """Works around a CPython 3.11 bug (python/cpython#106905, Debian 12's python3 has it):
    `ast.parse` called deep in the stack may raise SystemError. Hypothesis parses a module's
    source the first time it describes one of its lambdas, which schemathesis's coverage phase
    does deep in recursion; describing one here, at the top of the stack, caches that parse."""
    try:
        import types

        from hypothesis.internal.reflection import get_pretty_function_description
        from schemathesis.specs.openapi.coverage import _schema

        probe = lambda value: value  # noqa: E731
        probe = types.FunctionType(probe.__code__.replace(co_filename=_schema.__file__), {})
        get_pretty_function_description(probe)
    except Exception:  # an optimisation only: never stop the run
        pass


_parse_coverage_source_now()
UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _given(query: dict, name: str):
    """The value of a query parameter, or None when absent or empty (the server's reading)."""
    value = query.get(name)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value


def _instant(value):
    """A day or an RFC 3339 instant as an aware datetime (a day at its start, UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), UTC)
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
        return parsed if parsed.tzinfo else None
    except ValueError:
        return None


def _events(body):
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return
    started = (_now() - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for event in body["events"]:
        if isinstance(event, dict):
            event["classId"] = CLASS_ID
            event["startedAt"] = started
            seconds = event.get("watchedSeconds")
            # Whole numbers may come as 2200.0 (the server reads them as 2200).
            whole = isinstance(seconds, int) or (isinstance(seconds, float) and seconds.is_integer())
            if whole and not isinstance(seconds, bool):
                event["watchedSeconds"] = max(1, min(int(seconds), 3600))


def _voucher_expiry(body):
    if not isinstance(body, dict):
        return
    expires = _instant(body.get("expiresAt"))
    if expires is not None and expires <= _now() + dt.timedelta(minutes=5):
        body["expiresAt"] = (_now() + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _analytics(query: dict):
    period, start, end = (_given(query, n) for n in ("period", "startDate", "endDate"))
    if period is not None:
        query.pop("startDate", None)
        query.pop("endDate", None)
        return
    if (start is None) != (end is None):
        query.pop("startDate", None)
        query.pop("endDate", None)
        return
    if start is None:
        return
    try:
        first, last = sorted([dt.date.fromisoformat(start), dt.date.fromisoformat(end)])
    except ValueError:
        return
    if (last - first).days >= 366:
        first = last - dt.timedelta(days=365)
    query["startDate"], query["endDate"] = first.isoformat(), last.isoformat()


def _billing(query: dict):
    today = _now().date()
    month, year = _given(query, "month"), _given(query, "year")
    try:
        m = int(month) if month is not None else today.month
        y = int(year) if year is not None else today.year
    except (TypeError, ValueError):
        return
    # A day of margin either way for the partner's timezone.
    if (y, m) >= (today.year, today.month):
        query["year"] = today.year - 1


def _audit(query: dict):
    start, end = _instant(_given(query, "from")), _instant(_given(query, "to"))
    # Days are read in the partner's timezone: keep a day of margin.
    if start is not None and end is not None and start > end - dt.timedelta(days=1):
        query.pop("to", None)


def _spare_credentials(method: str, path: str, case):
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    target = str(params.get("id", "")).strip().lower()
    if (method, path) == ("PATCH", "/partner/staff/{id}") and target and target == ADMIN_ID:
        if isinstance(case.body, dict):
            case.body.pop("role", None)
            case.body.pop("active", None)
            if not case.body:
                case.body["name"] = "Demo Admin"
    elif (method, path) == ("DELETE", "/partner/api-keys/{id}") and target and target == API_KEY_ID:
        params["id"] = str(uuid.uuid4())


@schemathesis.hook
def map_case(context, case):
    _spare_credentials(case.method.upper(), case.operation.path, case)
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    method, path = case.method.upper(), case.operation.path
    if (method, path) == ("POST", "/app/events"):
        _events(case.body)
    elif (method, path) == ("POST", "/partner/vouchers"):
        _voucher_expiry(case.body)
    elif isinstance(case.query, dict):
        if path in ("/partner/analytics", "/partner/funnel"):
            _analytics(case.query)
        elif path in ("/partner/billing", "/partner/billing/export"):
            _billing(case.query)
        elif path == "/partner/audit-log":
            _audit(case.query)
    return case
