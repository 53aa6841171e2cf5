"""Secrets out of messages: URL credentials and queries, secret-named keys, secret shapes.

A leaf module (stdlib only). ``stacks.schema.problems`` renders every config problem
through :func:`redact_value` and :func:`redact_text`, so no error message carries a
password from a URL, the value of a ``password``/``token`` key or an access key id;
:func:`secret_kind` lets a rule refuse a value that looks like a credential.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_SECRET_KEY = re.compile(
    r"(password|passwd|passphrase|secret|token|apikey|api_key|privatekey|private_key|"
    r"credential|credentials)$",
    re.IGNORECASE,
)
_SECRET_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "an AWS access key id",
        re.compile(r"(?<![A-Z0-9])(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    (
        "a GitHub token",
        re.compile(r"(?<![A-Za-z0-9])(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})"),
    ),
    ("a Slack token", re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}")),
    (
        "a JSON Web Token",
        re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    (
        "an AWS secret access key",
        re.compile(
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])"
            r"(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
    ),
)


def secret_key_name(key: str) -> bool:
    """Whether a config key names a secret (``password``, ``apiToken``, ``client_secret``...)."""
    return bool(_SECRET_KEY.search(key))


def secret_kind(text: str) -> str | None:
    """What kind of credential ``text`` contains (``'an AWS access key id'``...), or None."""
    for kind, pattern in _SECRET_SHAPES:
        if pattern.search(text):
            return kind
    return None


PUBLIC_QUERY_KEYS = frozenset({"region", "endpoint", "awssdk"})
"""Query parameters that are never secret (a secrets provider URL's ``region``): kept, so
a command printed in an error (``pulumi stack init ... ?region=us-west-2``) still works."""


def _redact_query(query: str) -> str:
    if not query:
        return ""
    kept = []
    for pair in query.split("&"):
        key, sep, _ = pair.partition("=")
        kept.append(
            pair if key in PUBLIC_QUERY_KEYS else f"{key}{sep}{REDACTED}" if sep else REDACTED
        )
    return "&".join(kept)


def redact_url(url: str) -> str:
    """``url`` without its userinfo, its query values (but a ``region`` and the like) and
    its fragment (each replaced by ``***``)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return REDACTED
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = _redact_query(parts.query)
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL's credentials and query hidden and credential shapes masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for kind, pattern in _SECRET_SHAPES:
        text = pattern.sub(f"[{kind.split(' ', 1)[1]}: {REDACTED}]", text)
    return text


def redact_value(value: Any, key: str = "") -> Any:
    """``value`` with secret-named keys' values replaced and every string redacted."""
    if key and secret_key_name(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
