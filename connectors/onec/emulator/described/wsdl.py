"""A described service's own WSDL file: what the emulator learns from it (the service's
name and namespace, its operations and their SOAPActions, which SOAP versions it binds),
and the file as served, its ``soap:address`` rewritten to the endpoint.

1C bakes into its WSDL the address the publication was reached by (onec.md §1.2): the
emulator serves it with the address of the listening socket, as 1C would when reached there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_BIND = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BIND = "http://schemas.xmlsoap.org/wsdl/soap12/"
_VERSION_OF = {SOAP11_BIND: "1.1", SOAP12_BIND: "1.2"}


@dataclass(frozen=True)
class ServiceWsdl:
    """What the emulator needs of a WSDL."""

    service: str  # <service name=…>
    namespace: str  # targetNamespace: the namespace of the wrappers and their children
    actions: dict[str, str]  # operation → SOAPAction (<namespace>#<Service>:<Operation>)
    versions: frozenset[str]  # "1.1", "1.2": the bindings it has
    text: bytes  # the file as it is

    def served(self, endpoint: str) -> bytes:
        """The WSDL with every port's address set to ``endpoint``."""
        root = _parse(self.text)
        for ns in (SOAP11_BIND, SOAP12_BIND):
            for address in root.iter(f"{{{ns}}}address"):
                address.set("location", endpoint)
        data: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
        return data


def read_wsdl(path: Path) -> ServiceWsdl:
    """Read the WSDL a 1C team published; ValueError if it lacks what a service needs."""
    text = path.read_bytes()
    root = _parse(text)
    namespace = root.get("targetNamespace")
    services = root.findall(f"{{{WSDL_NS}}}service")
    if root.tag != f"{{{WSDL_NS}}}definitions" or not namespace or len(services) != 1:
        raise ValueError(f"{path}: not a WSDL 1.1 with a targetNamespace and one service")
    operations = [
        op.get("name")
        for port_type in root.iter(f"{{{WSDL_NS}}}portType")
        for op in port_type.findall(f"{{{WSDL_NS}}}operation")
    ]
    actions: dict[str, str] = {}
    versions: set[str] = set()
    for binding in root.iter(f"{{{WSDL_NS}}}binding"):
        for ns, version in _VERSION_OF.items():
            if binding.find(f"{{{ns}}}binding") is not None:
                versions.add(version)
            for op in binding.findall(f"{{{WSDL_NS}}}operation"):
                found = op.find(f"{{{ns}}}operation")
                if found is not None and found.get("soapAction"):
                    actions[op.get("name")] = found.get("soapAction")
    for name in operations:
        actions.setdefault(name, "")
    return ServiceWsdl(
        services[0].get("name"), namespace, actions, frozenset(versions) or frozenset({"1.1"}), text
    )


def _parse(text: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    return etree.fromstring(text, parser)
