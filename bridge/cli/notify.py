"""``bridge notify``: a programme notice by SMS to many customers, each phone once.

The notice is named by its template's text (``ntc_…``): running the same template again
resumes it, and a phone that had it is not texted again (``bridge.customers.notices``).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.customers_master import incomplete_phones
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json
from bridge.customers.notices import Counts, Notice, Pacer, PhoneList, notice_id, read_phones
from bridge.customers.outbox import sent_check
from bridge.customers.proofs import ProofBook
from bridge.logs import configure_logging
from bridge.settings_loader import LoadedSettings
from bridge.settings_sms import SandboxGatewaySettings, check_template
from bridge.sms.factory import build_gateway
from bridge.store import Store
from bridge.store.customer_records import customer_records_of

HELP = (
    "send one SMS per phone from a template, throttled (--rate SMS a second) and resumable:"
    " the same template again goes on where a run stopped (kill -9 included) and texts no"
    " phone twice. A phone cut short mid-send is checked with the gateway where it can tell"
    " (the sandbox); where it cannot (an HTTP provider) it is not resent and is counted as"
    " 'unknown'. The template may hold {link}: the questionnaire link of"
    " customers.registration.link with a proof of the phone"
)
EXAMPLE = (
    "bridge notify --template spring.txt --phones phones.txt --dry-run\n"
    "bridge notify --template spring.txt --phones phones.txt --rate 20\n"
    "bridge notify --template fill-in.txt --status accumulate_only"
)
# The final count's order, and what each outcome means.
OUTCOMES = {
    "sent": "sent now",
    "already_sent": "sent before",
    "would_send": "would be sent",
    "would_check": "cut short mid-send (checked with the gateway when run)",
    "unknown": "cut short mid-send, gateway cannot tell (not resent)",
    "failed": "refused by the provider",
    "left": "provider down: run again",
}


def register(commands: Commands) -> None:
    """Add ``notify``."""
    summary = "a programme notice: one SMS per phone from a template, throttled, resumable"
    parser = add_command(commands, "notify", summary, EXAMPLE, run)
    parser.description = HELP
    parser.add_argument("--template", required=True, metavar="FILE", help="the SMS text (UTF-8)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--phones", metavar="FILE", help="one phone a line, any spelling; # comments")
    who.add_argument(
        "--status",
        choices=["accumulate_only"],
        help="customers the bridge knows (registered or verified) whose questionnaire misses"
        " a required field, as the master says",
    )
    parser.add_argument(
        "--rate", type=float, metavar="N", help="SMS a second (default customers.notices)"
    )
    parser.add_argument("--dry-run", action="store_true", help="count only, send nothing")
    parser.add_argument("--json", action="store_true", help="print the final count as JSON")


def _read(path: str, what: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}", USAGE)
        return None


def run(args: argparse.Namespace) -> int:
    """Send (or count) the notice."""
    if args.rate is not None and not 0 < args.rate <= 1000:
        return fail("--rate: must be more than 0 and at most 1000 SMS a second", USAGE)
    raw = _read(args.template, "template")
    if raw is None:
        return USAGE
    template = raw.strip()
    if not template:
        return fail(f"--template: {args.template} is empty", USAGE)
    try:
        check_template(template, frozenset({"link"}))
    except ValueError as exc:
        return fail(f"--template: {exc}", USAGE)
    listed = PhoneList()
    if args.phones is not None:
        text = _read(args.phones, "phones")
        if text is None:
            return USAGE
        listed = read_phones(text.splitlines())
    loaded = load(args)
    if loaded is None:
        return FAILURE
    configure_logging(loaded.settings.log)  # to stderr: stdout holds the count
    sms = loaded.settings.bonus.sms
    if isinstance(sms.gateway, SandboxGatewaySettings) and not loaded.settings.sandbox.enabled:
        # The sandbox gateway only keeps texts in the store: every phone would be marked
        # sent and the real notice could never go out under this template.
        return fail(
            "bonus.sms.gateway is the sandbox's and sandbox.enabled is off: no text would"
            " reach anyone; configure bonus.sms.gateway (smsru, smsc or http)"
        )
    rate = args.rate or loaded.settings.customers.notices.rate_per_second
    counts = asyncio.run(
        with_store(loaded, lambda store: _notify(loaded, store, args, template, listed, rate))
    )
    if counts is None:
        return FAILURE
    return _report(notice_id(template), listed, counts, args)


async def _notify(
    loaded: LoadedSettings,
    store: Store,
    args: argparse.Namespace,
    template: str,
    listed: PhoneList,
    rate: float,
) -> Counts | None:
    phones = listed.phones
    if args.status is not None:
        found = await incomplete_phones(loaded, store)
        if isinstance(found, str):
            fail(f"--status accumulate_only: {found}")
            return None
        phones = listed.phones = found
    gateway = build_gateway(loaded.settings.bonus.sms, store)
    link = None
    if "{link}" in template:
        link = await _links(loaded, store)
    notice = Notice(
        template,
        customer_records_of(store),
        gateway,
        sent_check(gateway, store),
        link,
        Pacer(rate),
    )
    counts = Counts()
    try:
        if args.dry_run:
            for phone in phones:
                counts.add(await notice.plan(phone))
            return counts
        with _bar(len(phones), quiet=args.json) as advance:

            def done(outcome: str) -> None:
                counts.add(outcome)
                advance()

            await notice.run(phones, done)
    finally:
        await gateway.close()
    return counts


async def _links(loaded: LoadedSettings, store: Store) -> Callable[[str], str]:
    """phone → the questionnaire link with a proof of it (the daemon's key)."""
    settings = loaded.settings.customers
    key = settings.proof_key
    secret = (
        key.get_secret_value()
        if key is not None
        else await store.secret("proof_hmac_key", lambda: secrets.token_hex(32))
    )
    proofs = ProofBook(secret.encode(), settings.proof_ttl_seconds, time.time)
    ttl = settings.registration.link_ttl_seconds
    return lambda phone: settings.registration.link.format(proof=proofs.issue(phone, ttl)[0])


@contextmanager
def _bar(total: int, *, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar over the phones (hidden for --json); yields its advance."""
    columns = (TextColumn("notify"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, disable=quiet) as progress:
        task = progress.add_task("notify", total=total)
        yield lambda: progress.advance(task)


def _report(notice: str, listed: PhoneList, counts: Counts, args: argparse.Namespace) -> int:
    found = counts.outcomes
    view: dict[str, Any] = {
        "notice": notice,
        "dry_run": bool(args.dry_run),
        "phones": len(listed.phones),
        "counts": {name: found.get(name, 0) for name in OUTCOMES if found.get(name)},
        "bad_lines": [{"line": n, "problem": why} for n, why in listed.bad],
        "repeated": listed.repeated,
    }
    if args.json:
        print_json(view)
    else:
        for number, why in listed.bad:
            out.print(f"{args.phones}:{number}: skipped, {why}", markup=False)
        parts = [f"{n} {OUTCOMES[name]}" for name, n in view["counts"].items()]
        extra = f"; {len(listed.bad)} bad lines skipped" if listed.bad else ""
        extra += f"; {listed.repeated} repeated phones" if listed.repeated else ""
        summary = ", ".join(parts) or "nothing to do"
        out.print(f"{notice}: {len(listed.phones)} phones: {summary}{extra}", markup=False)
    return FAILURE if found.get("left") else OK
