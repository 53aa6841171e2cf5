"""AWS tag rules for ``mlstack:tags`` and ``mlstack:owner`` (a leaf module).

AWS's rules (the ``TagKey``/``TagValue`` shapes of botocore's ``elbv2`` and ``logs``
models; the AWS tagging guide): key 1-128 and value 0-256 characters, each character
a Unicode letter (``\\p{L}``), separator/space (``\\p{Z}``) or number (``\\p{N}``) or one
of ``_ . : / = + - @``; no ``aws:`` prefix (any case); at most 50 user tags per
resource. The provider's ``default_tags`` are merged into every resource's own tags
(``tags_all``), so the 50 include the stack's default tags and the tags a component
sets itself (at most :data:`OWN_TAGS_MAX` on any resource this program declares).
"""

from __future__ import annotations

import unicodedata

from components.redact import secret_kind
from stacks.schema.secrets import SecureValue

MAX_TAGS_PER_RESOURCE = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
TAG_SYMBOLS = "_.:/=+-@"
OWN_TAGS_MAX = 5
"""Most tags any resource of the program sets itself besides the default tags (a private
subnet: Name, kubernetes.io/cluster/<name>, kubernetes.io/role/internal-elb,
karpenter.sh/discovery, mlstack.io/subnet-tier); tests check it against the plans."""
ALLOWED_CHARS = f"Unicode letters, digits and spaces, and {' '.join(TAG_SYMBOLS)}"


def _bad_char(text: str) -> str | None:
    """The first character AWS's ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`` refuses, or None."""
    for char in text:
        if char in TAG_SYMBOLS or unicodedata.category(char)[0] in "LZN":
            continue
        return char
    return None


def _describe(char: str) -> str:
    name = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} {name}".rstrip()


def tag_text_problem(text: str, *, what: str, max_chars: int, min_chars: int = 0) -> str | None:
    """What AWS would refuse in one tag key or value (``what`` names it), or None."""
    if not min_chars <= len(text) <= max_chars:
        return f"{what} has {len(text)} characters; allowed: {min_chars} to {max_chars}"
    bad = _bad_char(text)
    if bad is not None:
        return f"{what} contains {_describe(bad)}; allowed: {ALLOWED_CHARS}"
    if text.lower().startswith("aws:"):
        return f"{what} starts with 'aws:' (reserved for AWS); allowed: any other prefix"
    kind = secret_kind(text)
    if kind is not None:
        return (
            f"{what} looks like {kind}: tags are readable by anyone who can list the "
            "resource and land in billing reports; allowed: no credentials in tags"
        )
    return None


def tag_problems(tags: dict[str, str]) -> list[str]:
    """Every problem of user tags, one line each (key and value checked separately)."""
    found: list[str] = []
    for key, value in tags.items():
        if not isinstance(key, str):
            found.append(f"tag key {key!r} is not text; allowed: a quoted key")
            continue
        problem = tag_text_problem(key, what="the key", max_chars=MAX_KEY_CHARS, min_chars=1)
        if problem:
            found.append(f"tag key {key!r} is not a valid AWS tag key: {problem}")
        if not isinstance(value, str):
            continue  # pydantic reports it at tags.<key>, with the "quote it" hint
        if isinstance(value, SecureValue):
            continue  # a secure: value: offline an opaque placeholder, checked by the engine
        problem = tag_text_problem(value, what=f"tag {key!r} value", max_chars=MAX_VALUE_CHARS)
        if problem:
            found.append(problem)
    return found


def tag_budget(reserved: int) -> int:
    """How many user tags fit: 50, less the stack's own default tags and component tags."""
    return MAX_TAGS_PER_RESOURCE - reserved - OWN_TAGS_MAX
