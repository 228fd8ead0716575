"""What both modes know about MLflow's artifact store: where artifacts go in the bucket
and the port MLflow reaches the store on. The mode-aws bucket itself is in `artifacts`."""

from __future__ import annotations

from urllib.parse import urlsplit

ARTIFACTS_PREFIX = "artifacts"
HTTPS_PORT = 443


def object_store_port(endpoint_url: str | None) -> int:
    """The port MLflow reaches its artifact store on: S3's HTTPS, or the configured endpoint's."""
    if not endpoint_url:
        return HTTPS_PORT
    parts = urlsplit(endpoint_url)
    return parts.port or (80 if parts.scheme == "http" else HTTPS_PORT)
