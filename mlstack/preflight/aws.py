"""AWS clients for preflight: the standard boto3 credential chain, ``AWS_ENDPOINT_URL`` honoured.

botocore itself reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), so a
moto server on loopback answers every call in the tests; nothing here special-cases it.
Preflight only reads: every call it makes is a Describe/Get/List.
"""

from __future__ import annotations

from typing import Any

from mlstack.aws import (
    CREDENTIALS_HOWTO,  # also imported from here by checks.py
    error_code,
)
from mlstack.errors import UsageError

Client = Any
"""A boto3 client (botocore generates its methods at runtime, so it is untyped)."""


CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "AuthFailure",
    }
)
"""Error codes meaning "these credentials are not usable" (exit 2, not a FAIL)."""


class Clients:
    """One client per (service, region), created on first use from one boto3 session."""

    def __init__(self, region: str, session: Any | None = None) -> None:
        import boto3

        self.region = region
        self._session = session if session is not None else boto3.Session(region_name=region)
        self._clients: dict[tuple[str, str], Client] = {}

    def has_credentials(self) -> bool:
        return self._session.get_credentials() is not None

    def http_get(self, url: str) -> bytes:
        """GET a public https URL (a Helm repository's index or package)."""
        from mlstack.preflight.chart_crds import http_get

        return http_get(url)

    def get(self, service: str, region: str | None = None) -> Client:
        key = (service, region or self.region)
        if key not in self._clients:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=10,
                read_timeout=30,
            )
            self._clients[key] = self._session.client(service, region_name=key[1], config=config)
        return self._clients[key]


def require_credentials(clients: Clients) -> None:
    if not clients.has_credentials():
        raise UsageError(CREDENTIALS_HOWTO)


def describe_error(exc: BaseException) -> str:
    """One line for a failed AWS call: code and message, no traceback."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "")
        return f"{operation}: {error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


def is_access_denied(exc: BaseException) -> bool:
    code = error_code(exc)
    return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403")


def arn_account(arn: str) -> str | None:
    """The account id field of an ARN ('' fields, like S3 or AWS-managed ones, give None)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or not parts[4].isdigit():
        return None
    return parts[4]


def arn_region(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[3] or None if len(parts) >= 6 else None
