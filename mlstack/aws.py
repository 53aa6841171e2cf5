"""How every boto3 client mlstack builds talks to AWS: bounded waits, bounded retries.

An endpoint that accepts connections and never answers must not hang a command:
each client gets a connect and a read timeout and a fixed number of attempts
(botocore's ``standard`` retry mode, which retries timeouts and throttling with
backoff), and :func:`network_error` turns what botocore raises when they run out
into one line naming the endpoint. Override the defaults with the environment:

* ``MLSTACK_AWS_CONNECT_TIMEOUT`` seconds (default 5)
* ``MLSTACK_AWS_READ_TIMEOUT`` seconds (default 30): the longest silence on a socket,
  not a limit on a whole transfer
* ``MLSTACK_AWS_MAX_ATTEMPTS`` (default 3): attempts per request, first one included
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mlstack.errors import MlstackError, UsageError

CONNECT_ENV = "MLSTACK_AWS_CONNECT_TIMEOUT"
READ_ENV = "MLSTACK_AWS_READ_TIMEOUT"
ATTEMPTS_ENV = "MLSTACK_AWS_MAX_ATTEMPTS"

CREDENTIALS_HOWTO = (
    "no AWS credentials found (looked at environment variables, shared config and "
    "credentials files, SSO, container and instance roles): set AWS_PROFILE=<profile> "
    "(after `aws sso login`), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; in GitHub "
    "Actions run aws-actions/configure-aws-credentials first"
)
"""The one line (exit 2) of every command that needs AWS credentials and finds none."""


class NoCredentialsUsageError(UsageError):
    """No AWS credentials in the standard chain: a missing prerequisite (exit 2)."""

    def __init__(self, needed_for: str | None = None) -> None:
        super().__init__(f"{needed_for}: {CREDENTIALS_HOWTO}" if needed_for else CREDENTIALS_HOWTO)


def require_credentials(session: Any, needed_for: str | None = None) -> None:
    """Raise :class:`NoCredentialsUsageError` when ``session`` resolves no credentials.

    A session without ``get_credentials`` (a test double) is taken as it is."""
    get_credentials = getattr(session, "get_credentials", None)
    if get_credentials is not None and get_credentials() is None:
        raise NoCredentialsUsageError(needed_for)


def credentials_error(exc: BaseException, needed_for: str | None = None) -> UsageError | None:
    """The exit-2 how-to for botocore's ``NoCredentialsError``, None for anything else."""
    from botocore.exceptions import NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return NoCredentialsUsageError(needed_for)
    return None


@dataclass(frozen=True)
class Timeouts:
    """Connect/read timeouts (seconds) and attempts per request of one client."""

    connect_seconds: float = 5.0
    read_seconds: float = 30.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls) -> Timeouts:
        """The defaults, overridden by ``MLSTACK_AWS_*`` (a bad value is a usage error)."""
        default = cls()

        def number(env: str, fallback: float, low: float, high: float) -> float:
            raw = os.environ.get(env)
            if raw is None or raw == "":
                return fallback
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not low <= value <= high:
                raise UsageError(f"${env}={raw!r}: a number of seconds from {low:g} to {high:g}")
            return value

        attempts_raw = os.environ.get(ATTEMPTS_ENV) or str(default.max_attempts)
        if not attempts_raw.isdigit() or not 1 <= int(attempts_raw) <= 10:
            raise UsageError(f"${ATTEMPTS_ENV}={attempts_raw!r}: an integer from 1 to 10")
        return cls(
            connect_seconds=number(CONNECT_ENV, default.connect_seconds, 0.1, 300),
            read_seconds=number(READ_ENV, default.read_seconds, 0.1, 3600),
            max_attempts=int(attempts_raw),
        )


def client_config(timeouts: Timeouts | None = None, **extra: Any) -> Any:
    """A ``botocore.config.Config`` with the timeouts and retries; ``extra`` is passed on."""
    from botocore.config import Config

    timeouts = timeouts or Timeouts.from_env()
    return Config(
        connect_timeout=timeouts.connect_seconds,
        read_timeout=timeouts.read_seconds,
        retries={"mode": "standard", "total_max_attempts": timeouts.max_attempts},
        **extra,
    )


def make_client(
    session: Any,
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    timeouts: Timeouts | None = None,
    **config: Any,
) -> Any:
    """``session.client(service)`` with :func:`client_config`: the only way mlstack builds one.

    No credentials in the session's chain: :class:`NoCredentialsUsageError` (exit 2, the
    how-to) here, before botocore's bare "Unable to locate credentials" on the first call."""
    check_endpoint_url(endpoint_url)
    require_credentials(session)
    kwargs: dict[str, Any] = {"config": client_config(timeouts, **config)}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return session.client(service, **kwargs)


def endpoint_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (None: it can): an http(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not a URL"
    return None


def check_endpoint_url(url: str | None) -> None:
    """Refuse a bad ``--endpoint-url`` (exit 2) before botocore's bare ``ValueError``."""
    if url is not None and (problem := endpoint_url_problem(url)):
        raise UsageError(
            f"--endpoint-url {url!r}: {problem}; allowed: an http:// or https:// URL with a "
            "host, e.g. http://127.0.0.1:5000"
        )


def endpoint_of(client: Any) -> str:
    """The endpoint URL a client talks to."""
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "the AWS endpoint")


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a request URL (botocore reports the whole URL)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def network_error(exc: BaseException, endpoint: str | None = None) -> MlstackError | None:
    """One line for a timeout or an unreachable endpoint, or None for anything else.

    ``endpoint``: shown when given, else the origin of the URL botocore reports.
    """
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if endpoint is None:
        reported = getattr(exc, "kwargs", {}).get("endpoint_url")
        endpoint = _origin(str(reported)) if reported else "the AWS endpoint"
    try:
        timeouts = Timeouts.from_env()
    except UsageError:
        timeouts = Timeouts()
    tries = f"{timeouts.max_attempts} attempt{'s' if timeouts.max_attempts != 1 else ''}"
    if isinstance(exc, ReadTimeoutError):
        return MlstackError(
            f"{endpoint} accepted the connection but did not answer within "
            f"{timeouts.read_seconds:g} s ({tries}); check the endpoint (--endpoint-url, "
            f"proxy, VPC endpoint) or raise ${READ_ENV}"
        )
    if isinstance(exc, ConnectTimeoutError):
        return MlstackError(
            f"could not connect to {endpoint} within {timeouts.connect_seconds:g} s ({tries}); "
            f"check the endpoint and the network, or raise ${CONNECT_ENV}"
        )
    if isinstance(exc, EndpointConnectionError):
        return MlstackError(f"cannot reach {endpoint} ({tries}): connection refused or no route")
    if isinstance(exc, ConnectionClosedError):
        return MlstackError(f"{endpoint} closed the connection without an answer ({tries})")
    return None
