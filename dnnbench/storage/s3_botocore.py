"""botocore's exceptions -> dnnbench's, shared by the boto3 and s3fs (aiobotocore) clients.

Imports botocore only (both clients depend on it); no client library.
"""

from __future__ import annotations

from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
                                 ReadTimeoutError, SSLError)

from dnnbench.errors import StorageError
from dnnbench.storage.s3common import (CREDENTIALS_HINT, S3AccessError, S3Settings, foreign, note_retries, s3_error,
                                       tls_error, unreachable)


def botocore_error(e: BaseException, op: str, key: str | None, settings: S3Settings) -> BaseException:
    """The dnnbench/builtin exception for a botocore (or aiobotocore) failure.

    A ClientError wrapped by s3fs into an OSError is found through ``__cause__``.
    """
    cause = e.__cause__ if isinstance(e, OSError) and isinstance(e.__cause__, ClientError) else e
    if isinstance(cause, ClientError):
        err = cause.response.get("Error", {})
        meta = cause.response.get("ResponseMetadata", {})
        note_retries(meta.get("RetryAttempts", 0))
        status = meta.get("HTTPStatusCode")
        return s3_error(err.get("Code"), int(status) if status else None, err.get("Message"), op=op, key=key,
                        settings=settings)
    if isinstance(e, SSLError):
        return tls_error(settings, str(e))
    if isinstance(e, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return unreachable(settings, f"{type(e).__name__}: {e}")
    if isinstance(e, ReadTimeoutError):
        return TimeoutError(f"S3 {op} {key!r}: no data for {settings.read_timeout_s} s ({e})")
    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return S3AccessError(f"no usable credentials for {settings.where} ({e})",
                             reference="storage.s3.access_key/secret_key", hint=CREDENTIALS_HINT)
    if isinstance(e, BotoCoreError):
        return StorageError(f"S3 {op} {key!r} failed: {type(e).__name__}: {e}", reference=settings.where)
    return foreign(e, op, key)
