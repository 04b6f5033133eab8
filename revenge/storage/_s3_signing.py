"""
SigV4 signing and credentials for the ``s3`` provider.

botocore does two things here and nothing else: the SigV4 arithmetic
(``S3SigV4Auth`` over an ``AWSRequest`` that never carries a body) and the
lookup of credentials (static keys from the configuration, or its default
chain: environment, web identity / IRSA, container and instance metadata).
The bytes travel through treq; see ``revenge.storage._s3``.

Bodies are signed as ``UNSIGNED-PAYLOAD`` unless the caller already holds
the payload's SHA-256 (small XML documents): hashing a streamed body would
mean reading it twice, and S3 checks part integrity through ``Content-MD5``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from revenge.logs._context import run_in_thread
from revenge.storage._interface import StorageError

__all__ = [
    "UNSIGNED_PAYLOAD",
    "ChainResolver",
    "S3CredentialSource",
    "resolve_default_chain",
    "sign_request",
]

_log = Logger()

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Returns botocore credentials (possibly refreshable) or None when the chain
# found nothing. Blocking: it may read files and call metadata services.
ChainResolver = Callable[[], "Credentials | None"]

NO_CREDENTIALS = (
    "no S3 credentials found: set storage.s3.access_key_id and "
    "storage.s3.secret_access_key, or provide AWS credentials through the "
    "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), a web identity "
    "token (IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) or instance metadata"
)


class _PresetPayloadSigner(S3SigV4Auth):
    """S3's SigV4 signer, told the payload hash instead of reading a body."""

    def __init__(self, credentials: ReadOnlyCredentials, region: str, payload_hash: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def sign_request(
    credentials: ReadOnlyCredentials,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload_hash: str = UNSIGNED_PAYLOAD,
) -> dict[str, str]:
    """
    The headers to send: ``headers`` plus ``Authorization``, ``X-Amz-Date``,
    ``X-Amz-Content-SHA256`` and, for temporary credentials,
    ``X-Amz-Security-Token``. Every header given is signed, so leave out
    those the HTTP client writes itself (``Content-Length``) and those a
    proxy may rewrite. Pure computation: safe on the reactor thread.
    """
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    _PresetPayloadSigner(credentials, region, payload_hash).add_auth(request)
    return {name: value for name, value in request.headers.items()}


def resolve_default_chain(region: str) -> Credentials | None:
    """botocore's default credential chain (blocking: call it in a thread)."""
    # Imported here: building a session loads botocore's data files.
    from botocore.session import Session

    session = Session()
    # Regional STS endpoints for web identity, and the region of the chain.
    session.set_config_variable("region", region)
    return session.get_credentials()


class S3CredentialSource:
    """
    The keys requests are signed with.

    Static keys are used as given. Otherwise botocore's default chain is
    resolved on first use and its credentials re-read whenever botocore
    says they need refreshing (temporary credentials from web identity or
    instance metadata expire); both happen in the reactor's thread pool
    because they may block on files and network calls. Concurrent callers
    share one lookup.
    """

    def __init__(
        self,
        reactor: Any,
        region: str,
        access_key_id: str = "",
        secret_access_key: str = "",
        resolve_chain: ChainResolver | None = None,
    ) -> None:
        if bool(access_key_id) != bool(secret_access_key):
            raise ValueError(
                "set both the S3 access key id and the secret access key, or neither "
                "to use the default AWS credential chain"
            )
        self._reactor = reactor
        self._static: ReadOnlyCredentials | None = None
        if access_key_id:
            self._static = ReadOnlyCredentials(access_key_id, secret_access_key, None)
        self._resolve: ChainResolver = resolve_chain or (lambda: resolve_default_chain(region))
        self._chain: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._lock = DeferredLock()

    @property
    def is_static(self) -> bool:
        return self._static is not None

    async def current(self) -> ReadOnlyCredentials:
        """Credentials valid for signing a request now."""
        if self._static is not None:
            return self._static
        if self._frozen is not None and not self._refresh_needed():
            return self._frozen
        await self._lock.acquire()
        try:
            # Another caller may have refreshed them while we waited.
            if self._frozen is None or self._refresh_needed():
                self._frozen = await run_in_thread(self._reactor, self._load)
            return self._frozen
        finally:
            self._lock.release()

    def secrets(self) -> list[str]:
        """Every credential string in use, for scrubbing text that leaves us."""
        found: list[str] = []
        for credentials in (self._static, self._frozen):
            if credentials is not None:
                values = (credentials.access_key, credentials.secret_key, credentials.token)
                found += [value for value in values if value]
        return found

    def _refresh_needed(self) -> bool:
        # A quick comparison of the expiry time with the clock; only
        # refreshable credentials have it.
        check = getattr(self._chain, "refresh_needed", None)
        return bool(check()) if callable(check) else False

    def _load(self) -> ReadOnlyCredentials:
        """Resolve the chain if needed and freeze its credentials (thread only)."""
        try:
            if self._chain is None:
                chain = self._resolve()
                if chain is None:
                    raise StorageError(NO_CREDENTIALS)
                self._chain = chain
                _log.info(
                    "S3 credentials from botocore's default chain: {method}",
                    method=getattr(chain, "method", "unknown"),
                )
            frozen = self._chain.get_frozen_credentials()
        except StorageError:
            raise
        except Exception as error:
            # botocore's messages name the provider and what went wrong,
            # never key material.
            raise StorageError(
                f"could not obtain S3 credentials: {type(error).__name__}: {error}"
            ) from error
        if not frozen.access_key or not frozen.secret_key:
            raise StorageError(NO_CREDENTIALS)
        return frozen
