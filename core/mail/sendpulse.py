"""The production mail adapter: SendPulse's SMTP API over httpx with a cached OAuth token."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx

from core.mail.base import MailDeliveryError, MailMessage


class SendPulseMailSender:
    """Send mail through SendPulse's `/smtp/emails`, fetching tokens with client credentials."""

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str,
        from_email: str,
        from_name: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        refresh_margin: float = 60.0,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._from = {"name": from_name, "email": from_email}
        self._owns_http = http is None
        # A client passed in keeps its own timeout: the caller configured it on purpose.
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._refresh_margin = refresh_margin
        self._token: str | None = None
        self._token_expires_at = 0.0
        # One token fetch at a time: a burst of sends must not each spend a token request
        # against SendPulse's 10 requests/s limit.
        self._token_lock = asyncio.Lock()

    async def send(self, message: MailMessage) -> str:
        """Deliver the message; return SendPulse's id for it."""
        payload = {"email": self._email_body(message)}
        token = await self._current_token()
        response = await self._post_email(payload, token)
        if response.status_code == 401:
            # The token was revoked or expired early on SendPulse's side: renew it once.
            self._drop_token(token)
            token = await self._current_token()
            response = await self._post_email(payload, token)
        return self._message_id(response, token)

    async def close(self) -> None:
        """Close the HTTP client if this sender created it."""
        if self._owns_http:
            await self._http.aclose()

    def _email_body(self, message: MailMessage) -> dict[str, Any]:
        return {
            "html": base64.b64encode(message.html.encode("utf-8")).decode("ascii"),
            "text": message.text,
            "subject": message.subject,
            "from": self._from,
            "to": [{"name": message.to_name, "email": message.to_email}],
        }

    async def _current_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_expires_at:
                return self._token
            token, expires_in = await self._fetch_token()
            self._token = token
            self._token_expires_at = time.monotonic() + expires_in - self._refresh_margin
            # Returned even when already inside the margin: it is still valid for this send.
            return token

    def _drop_token(self, token: str) -> None:
        # Only the token that failed: a concurrent send may already have fetched a fresh one.
        if self._token == token:
            self._token = None

    async def _fetch_token(self) -> tuple[str, float]:
        credentials = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        response = await self._post("/oauth/access_token", credentials, headers={})
        if response.status_code != 200:
            raise self._status_error("token request", response, token="")
        body = self._json(response)
        token = body.get("access_token") if body is not None else None
        expires_in = body.get("expires_in") if body is not None else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            # A 200 without a usable token is SendPulse misbehaving, not our request being wrong.
            raise MailDeliveryError("SendPulse token request: malformed response", retryable=True)
        return token, float(expires_in)

    async def _post_email(self, payload: dict[str, Any], token: str) -> httpx.Response:
        return await self._post(
            "/smtp/emails", payload, headers={"Authorization": f"Bearer {token}"}
        )

    async def _post(
        self, path: str, payload: dict[str, Any], *, headers: dict[str, str]
    ) -> httpx.Response:
        try:
            return await self._http.post(self._api_url + path, json=payload, headers=headers)
        except httpx.TransportError as exc:
            # The exception text names the URL and the failure only, never the request body.
            raise MailDeliveryError(
                f"SendPulse {path}: {type(exc).__name__}: {exc}", retryable=True
            ) from None

    def _message_id(self, response: httpx.Response, token: str) -> str:
        if response.status_code != 200:
            raise self._status_error("send", response, token=token)
        body = self._json(response)
        if body is None:
            # The message may or may not be queued; a duplicate beats a lost reset link.
            raise MailDeliveryError("SendPulse send: response is not JSON", retryable=True)
        if body.get("result") is not True:
            detail = self._describe(body, token=token)
            raise MailDeliveryError(f"SendPulse send rejected: {detail}", retryable=False)
        message_id = body.get("id")
        return "" if message_id is None else str(message_id)

    def _status_error(
        self, what: str, response: httpx.Response, *, token: str
    ) -> MailDeliveryError:
        status = response.status_code
        body = self._json(response)
        detail = f": {self._describe(body, token=token)}" if body is not None else ""
        return MailDeliveryError(
            f"SendPulse {what} failed: HTTP {status}{detail}",
            retryable=status == 429 or status >= 500,
        )

    def _describe(self, body: dict[str, Any], *, token: str) -> str:
        parts = [
            f"{key}={body[key]}"
            for key in ("error_code", "error", "message", "error_description")
            if body.get(key) not in (None, "")
        ]
        text = ", ".join(parts) or "no error detail"
        # Error text ends up in logs and task results; an echoing server must not leak secrets.
        for secret in (self._client_secret, token):
            if secret:
                text = text.replace(secret, "***")
        return text

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
