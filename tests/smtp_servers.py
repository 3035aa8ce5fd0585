"""Real SMTP servers on loopback for the queue tests (aiosmtpd): a sink that records
every message (offering PIPELINING or not), one that refuses the first N messages with
451, one that stalls in DATA until released, and the address of a server that is down (a
closed port)."""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

REFUSAL = "451 4.3.0 Temporary failure, try again later"


@dataclass(frozen=True)
class Delivery:
    """One message the server accepted, with when its DATA began and ended."""

    message_id: str
    recipients: tuple[str, ...]
    message: Message
    started: float
    finished: float


class Sink:
    """An aiosmtpd handler: records accepted messages; optionally refuses the first
    ``refuse_first`` DATA commands with 451, stalls the first ``stall_first`` until
    :meth:`release` (then accepts, or refuses when ``refuse_after_stall``), and delays
    every DATA by ``delay`` seconds."""

    def __init__(
        self,
        *,
        refuse_first: int = 0,
        stall_first: int = 0,
        refuse_after_stall: bool = False,
        delay: float = 0.0,
        pipelining: bool = False,
    ) -> None:
        self.pipelining = pipelining
        self.refuse_first = refuse_first
        self.stall_first = stall_first
        self.refuse_after_stall = refuse_after_stall
        self.delay = delay
        self.deliveries: list[Delivery] = []
        self.data_commands = 0
        self.stalling = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()

    def release(self) -> None:
        self._released.set()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        # aiosmtpd answers pipelined commands in order, but only says so when asked to.
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        started = time.monotonic()
        with self._lock:
            self.data_commands += 1
            n = self.data_commands
        if n <= self.stall_first:
            self.stalling.set()
            while not self._released.is_set():
                await asyncio.sleep(0.01)
            if self.refuse_after_stall:
                return REFUSAL
        if n <= self.refuse_first:
            return REFUSAL
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content)
        with self._lock:
            self.deliveries.append(
                Delivery(
                    message_id=msg["Message-ID"],
                    recipients=tuple(envelope.rcpt_tos),
                    message=msg,
                    started=started,
                    finished=time.monotonic(),
                )
            )
        return "250 OK"

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(d.message_id for d in self.deliveries)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.deliveries)} of {count} messages arrived")
            time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def down_url() -> str:
    """The URL of an SMTP server that is down: a loopback port nobody listens on."""
    return f"smtp://127.0.0.1:{free_port()}"


def _authenticate(users: dict[str, str]):
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else ""
        password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else ""
        return AuthResult(success=users.get(login) == password and login in users)

    return check


@contextlib.contextmanager
def running(
    sink: Sink, *, users: dict[str, str] | None = None, smtputf8: bool = False
) -> Iterator[str]:
    """Serve ``sink`` on a loopback port for the block; yields its smtp:// URL. With
    ``smtputf8`` the server offers SMTPUTF8 (internationalized addresses)."""
    port = free_port()
    kwargs: dict[str, object] = {"enable_SMTPUTF8": smtputf8}
    if users is not None:
        kwargs.update(
            authenticator=_authenticate(users), auth_require_tls=False, auth_required=True
        )
    controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        sink.release()
        controller.stop()
