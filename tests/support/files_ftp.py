"""A real FTP server on loopback (pyftpdlib) and sales reports for the files source."""

from __future__ import annotations

import logging
import random
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # pyftpdlib imports the standard asyncore/asynchat on Python 3.11 (it ships its own copy
    # for 3.12+, where they are gone): their deprecation is not ours to act on.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from bridge.rules.book import RuleBook
from bridge.rules.engine import CartLine, price_cart
from tests.support.daemon import free_port

FTP_USER, FTP_PASSWORD = "shop", "ftp-secret-1"
HEADER = "document;card;date;sku;group;quantity;amount"
SKUS = (("A-100", ""), ("B-200", ""), ("PROMO-7", ""), ("X-1", "promo20"), ("TOB-1", ""))
# bonus.sms for a bridge that sends no SMS here (the settings ask for a gateway all the same).
NO_SMS = {
    "gateway": {"type": "http", "url": "http://127.0.0.1:9/sms", "json_body": {"to": "{phone}"}}
}
DAYS = (date(2026, 12, 1), date(2026, 12, 26))  # the second in the promo's doubled week


@dataclass
class FtpServer:
    """An FTP server whose home is ``root``; ``reports`` is the folder reports go to."""

    root: Path
    port: int

    @property
    def reports(self) -> Path:
        """Where the shop drops its files."""
        return self.root / "reports"

    def url(self) -> str:
        """The files source's ``options.url``."""
        return f"ftp://{FTP_USER}@127.0.0.1:{self.port}/reports"


@contextmanager
def ftp_server(root: Path) -> Iterator[FtpServer]:
    """Serve ``root`` over FTP on a loopback port, in a thread, until the block ends."""
    (root / "reports").mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test ftp"})
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    port = free_port()
    server = FTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"timeout": 0.05, "handle_exit": False}, daemon=True
    )
    thread.start()
    try:
        yield FtpServer(root, port)
    finally:
        server.close_all()
        thread.join(5)


@dataclass(frozen=True)
class Doc:
    """One sales document as the test wrote it."""

    id: str
    card: str
    day: date
    lines: tuple[tuple[str, str, Decimal, Decimal], ...]  # sku, group, quantity, amount

    def rows(self) -> list[str]:
        """Its CSV rows (a decimal comma, as 1C's Russian exports write)."""
        return [
            f"{self.id};{self.card};{self.day.isoformat()};{sku};{group};{qty};"
            + str(amount).replace(".", ",")
            for sku, group, qty, amount in self.lines
        ]


def card_number(i: int) -> str:
    """The test's i-th card: 13 digits."""
    return f"2600000{i:06d}"


def card_phone(i: int) -> str:
    """The phone of the test's i-th card's owner."""
    return f"+7901{i:07d}"


def sales(count: int, cards: list[str], seed: int, prefix: str = "S") -> list[Doc]:
    """``count`` documents of 1–3 lines over ``cards``, every card at least once."""
    rnd = random.Random(seed)
    docs = []
    for n in range(count):
        card = cards[n % len(cards)]
        lines = tuple(
            (
                *rnd.choice(SKUS),
                Decimal(rnd.randint(1, 5)),
                Decimal(rnd.randint(1, 2_000_000)) / 100,
            )
            for _ in range(rnd.randint(1, 3))
        )
        docs.append(Doc(f"{prefix}-{n:05d}", card, rnd.choice(DAYS), lines))
    return docs


def csv_text(docs: list[Doc], extra: list[str] | None = None) -> str:
    """A report: the header, every document's rows, then ``extra`` rows."""
    rows = [row for doc in docs for row in doc.rows()]
    return "\n".join([HEADER, *rows, *(extra or [])]) + "\n"


def expected_by_card(
    book: RuleBook, docs: list[Doc], levels: dict[str, str | None]
) -> dict[str, Decimal]:
    """What the rules say each card earns: every document priced on its own, no spend."""
    owed: dict[str, Decimal] = {}
    for doc in docs:
        lines = [
            CartLine(sku, Decimal(1), amount, group=group or None)
            for sku, group, _q, amount in doc.lines
        ]
        earned = price_cart(book, lines, levels.get(doc.card), Decimal(0), doc.day).total("accrual")
        owed[doc.card] = owed.get(doc.card, Decimal("0.00")) + earned
    return owed


def files_system(ftp: FtpServer, **options: Any) -> dict[str, Any]:
    """``systems.shop`` reading ``ftp``'s reports folder."""
    return {
        "type": "files",
        "options": {
            "url": ftp.url(),
            "password": FTP_PASSWORD,
            "poll_interval": 3600,
            "settle_seconds": 0.2,
            **options,
        },
    }
