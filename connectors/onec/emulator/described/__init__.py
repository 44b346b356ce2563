"""An emulated 1C service described apart from the connector (DESCRIBED.md beside the
emulator has the whole format and the example services).

``DescribedEmulator`` (``server.py``) serves one service over the same emulated infobase
as ``OnecEmulator`` (an ``OnecLedger``, seeded with the sandbox customers): SOAP through the
service's own WSDL file (``wsdl.py``, ``soap_calls.py``) or HTTP routes (``http_calls.py``).
What it serves is a description file (``description.py`` reads it), in short::

    service: soap | http
    wsdl: bonus.wsdl          # soap; publish: bonus.1cws → /<publication>/ws/bonus.1cws
    root: bonus               # http → /<publication>/hs/bonus
    timezone: Europe/Moscow   # 1C writes times local, without an offset
    ids: {hold: "Б-{n:06d}", accrual: "Н-{n:06d}"}
    texts: {<reason>: <text>}
    refusal: {as: fault | answer | status, ...}
    operations:
      <name>:
        route: GET /cards/{card}/balance          # http
        does: balance                             # behaviours.BEHAVIOURS
        in: {card: path.card, cart_total: query.sum}
        out: {data: {balance: "balance:ru", updated: as_of}}
        refusal: {as: answer, reasons: [insufficient_balance]}

``does`` names a behaviour over the infobase (``behaviours.py``), ``in`` says where each of
its arguments is, ``out`` is the answer as a template whose leaves are values in one of
1C's spellings (``template.py``, ``spelling.py``), ``refusal`` how a refusal is answered: a
SOAP fault with 1C's text, an ordinary answer with a false flag, or an HTTP status.
"""

from connectors.onec.emulator.described.description import Description, load_description
from connectors.onec.emulator.described.server import DescribedEmulator

__all__ = ["DescribedEmulator", "Description", "load_description"]
