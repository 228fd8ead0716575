"""Values that look like credentials, for refusing them where config is plain text.

A stack file is committed to Git. A credential pasted into a field that is not a
Pulumi secret (say, an AWS secret key into `mlflow.s3CredentialsSecret`, which
names a Kubernetes Secret) is then in the repository's history for good. Each shape
here is specific enough that no legitimate name, path, URL or image matches it:
an AWS secret key is 40 characters of base64 with upper and lower case and a digit
(a Git commit SHA is lowercase hex, so it never matches).
"""

from __future__ import annotations

import re

_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
)
_AWS_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def credential_kind(value: str) -> str | None:
    """What credential `value` looks like ("an AWS secret access key"...), or None."""
    for kind, pattern in _SHAPES:
        if pattern.search(value):
            return kind
    if "-----BEGIN " in value:
        # A certificate's base64 lines (the last one may be 40 characters) are public data.
        return None
    for match in _AWS_SECRET_KEY.finditer(value):
        token = match.group(0)
        if re.search(r"[A-Z]", token) and re.search(r"[a-z]", token) and re.search(r"[0-9]", token):
            return "an AWS secret access key"
    return None
