"""Schemathesis hooks for scripts/schemathesis.sh.

Two rules of the API depend on more than one request, so no schema can
state them, and a generated request that is valid by the schema may break
them. These hooks keep such requests valid without touching what the case
tests:

* A job's `deadline` must lie at least `hours` after the time of the
  request (issue 9: a deadline already out of reach is refused with 422).
  A well-formed RFC 3339 deadline that is not in the future is moved to the
  far future; a malformed one is left as generated (the server must reject
  it).
* An `Idempotency-Key` used again with a different request is refused with
  422 (`idempotency-mismatch`, as the IETF Idempotency-Key draft says). A
  well-formed key is replaced by a fresh one, so two generated requests
  never share one; a malformed key is left as generated.
"""

import re
import uuid
from datetime import datetime, timedelta, timezone

import schemathesis

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
FAR_FUTURE = "2999-12-31T23:59:59Z"


def _future(text):
    """A well-formed deadline within reach of any job (hours <= 10,000, so
    two years) stays; a nearer or past one moves to the far future."""
    if not isinstance(text, str) or not RFC3339.match(text):
        return text
    try:
        when = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return text
    if when > datetime.now(timezone.utc) + timedelta(days=2 * 366):
        return text
    return FAR_FUTURE


@schemathesis.hook
def map_case(context, case):
    # A quote takes the job a submit would, with the same deadline rule.
    if (
        case.method.upper() == "POST"
        and case.path in ("/v1/jobs", "/v1/jobs/quote")
        and isinstance(case.body, dict)
    ):
        if "deadline" in case.body:
            case.body["deadline"] = _future(case.body["deadline"])
    if case.headers:
        for name in list(case.headers):
            if name.lower() == "idempotency-key":
                value = case.headers[name]
                if isinstance(value, str) and KEY.match(value):
                    case.headers[name] = f"st-{uuid.uuid4()}"
    return case
