"""Schemathesis checks of Beaker's own.

The gateway answers 200 whenever the service replied, and the service says
that it failed in the `Nats-Service-Error-Code` header (`NatsH-` over HTTP).
A 500 there is a server error as surely as an HTTP 500: no request a
caller can send may make the service fail.
"""

import schemathesis


@schemathesis.check
def service_reply_is_not_a_server_error(ctx, response, case):
    """The service's reply carries no 500 (its 'internal error' code)."""
    codes = response.headers.get("natsh-nats-service-error-code", [])
    if "500" in codes:
        errors = response.headers.get("natsh-nats-service-error", ["?"])
        raise AssertionError(f"the service failed with 500: {errors[0]}")
