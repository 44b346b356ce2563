"""The contract as a WSDL 1.1 document in the shape the 1C platform generates (onec.md §1.2).

``render_wsdl(Naming(), location)`` is the reference ``wsdl/BridgeLoyalty.wsdl``; any other
``Naming`` gives the WSDL a differently named 1C service would publish (the emulator serves
that one to prove adaptation through config). Regenerate the committed file with
``python -m connectors.onec.wsdl``.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

# lxml ships no type hints; it is used (rather than ElementTree) because 1C declares the
# service namespace twice (tns, xsd1) and XML Schema under two prefixes (xsd, xs).
from lxml import etree

from connectors.onec.contract import Record, optional_only
from connectors.onec.naming import NamedOperation, Naming

REFERENCE_LOCATION = "http://localhost/base/ws/BridgeLoyalty.1cws"
REFERENCE_PATH = Path(__file__).parent / "wsdl" / "BridgeLoyalty.wsdl"

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
XSD = "http://www.w3.org/2001/XMLSchema"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSI = "http://ws-i.org/schemas/conformanceClaim/"
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
BASIC_PROFILE = "http://ws-i.org/profiles/basic/1.1"

_Element = Any  # an lxml element


def render_wsdl(naming: Naming, location: str, *, omit: Collection[str] = ()) -> str:
    """The WSDL of ``naming``'s service with both ports at ``location``, declared UTF-8;
    ``omit`` leaves out optional operations (logical names), as a 1C published before they
    existed would."""
    left_out = optional_only(omit)
    named = tuple(op for op in naming.resolve_all() if op.contract.name not in left_out)
    service, namespace = naming.service, naming.namespace
    # Prefixes as 1C declares them: tns and xsd1 are both the service namespace (onec.md §1.2).
    nsmap = {None: WSDL, "soap12bind": SOAP12, "soapbind": SOAP11, "tns": namespace}
    nsmap |= {"wsp": WSP, "wsu": WSU, "xsd": XSD, "xsd1": namespace}
    attributes = {"name": service, "targetNamespace": namespace}
    root = etree.Element(f"{{{WSDL}}}definitions", attributes, nsmap=nsmap)
    _add_schema(_sub(root, WSDL, "types"), named, namespace)
    for op in named:
        for suffix, wrapper in (("Request", op.name), ("Response", f"{op.name}Response")):
            message = _sub(root, WSDL, "message", name=f"{op.name}{suffix}Message")
            _sub(message, WSDL, "part", name="parameters", element=f"tns:{wrapper}")
    port_type = _sub(root, WSDL, "portType", name=f"{service}PortType")
    for op in named:
        operation = _sub(port_type, WSDL, "operation", name=op.name)
        _sub(operation, WSDL, "input", message=f"tns:{op.name}RequestMessage")
        _sub(operation, WSDL, "output", message=f"tns:{op.name}ResponseMessage")
    _add_binding(root, named, f"{service}SoapBinding", SOAP11, service)
    _add_binding(root, named, f"{service}Soap12Binding", SOAP12, service)
    _add_service(root, service, location)
    etree.indent(root, space="\t")
    text: str = etree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'


def write_reference(path: Path = REFERENCE_PATH) -> None:
    """Write the reference WSDL (default names, ``REFERENCE_LOCATION``) to ``path``."""
    path.write_text(render_wsdl(Naming(), REFERENCE_LOCATION), encoding="utf-8", newline="\n")


def _sub(parent: _Element, namespace: str, tag: str, **attributes: str) -> _Element:
    # Keyword order is attribute order; 1C writes name, type, nillable, minOccurs, maxOccurs.
    return etree.SubElement(parent, f"{{{namespace}}}{tag}", attributes)


def _add_schema(types: _Element, named: tuple[NamedOperation, ...], namespace: str) -> None:
    schema = etree.SubElement(
        types,
        f"{{{XSD}}}schema",
        {
            "targetNamespace": namespace,
            "attributeFormDefault": "unqualified",
            "elementFormDefault": "qualified",
        },
        nsmap={"xs": XSD, "xs1": namespace},
    )
    type_names = _type_names(named)
    # The package's object types first, by name, then the operation wrappers (onec.md §1.2).
    complex_types: dict[str, tuple[NamedOperation, Record]] = {}
    for op in named:
        for record in op.contract.result.walk():
            complex_types.setdefault(type_names[op.contract.name, record.name], (op, record))
    for type_name, (op, record) in sorted(complex_types.items()):
        sequence = _sub(_sub(schema, XSD, "complexType", name=type_name), XSD, "sequence")
        for field in record.fields:
            if isinstance(field.type, Record):
                type_ = f"tns:{type_names[op.contract.name, field.type.name]}"
            else:
                type_ = f"xs:{field.type}"
            occurs = {}
            if field.repeated:  # an XDTO list property (onec.md §1.2 "…List" types)
                occurs = {"minOccurs": "0", "maxOccurs": "unbounded"}
            elif field.optional:  # a possibly-undefined value: nil or absent (onec.md §1.2)
                occurs = {"nillable": "true", "minOccurs": "0"}
            _sub(sequence, XSD, "element", name=op.fields[field.name], type=type_, **occurs)
    for op in named:
        wrapper = _sub(schema, XSD, "element", name=op.name)
        sequence = _sub(_sub(wrapper, XSD, "complexType"), XSD, "sequence")
        for param in op.contract.params:
            # 1C marks operation parameters nillable ("Возможно пустое", onec.md §1.2 example).
            occurs = {"nillable": "true"} | ({"minOccurs": "0"} if param.optional else {})
            name, type_ = op.params[param.name], f"xs:{param.type}"
            _sub(sequence, XSD, "element", name=name, type=type_, **occurs)
        response = _sub(schema, XSD, "element", name=f"{op.name}Response")
        sequence = _sub(_sub(response, XSD, "complexType"), XSD, "sequence")
        return_type = type_names[op.contract.name, op.contract.result.name]
        _sub(sequence, XSD, "element", name="return", type=f"tns:{return_type}")


def _type_names(named: tuple[NamedOperation, ...]) -> dict[tuple[str, str], str]:
    """The complexType of each (operation, record): shared unless names differ per operation."""
    shapes: dict[tuple[str, str], tuple[Any, ...]] = {}
    for op in named:
        for record in op.contract.result.walk():
            shapes[op.contract.name, record.name] = _shape(op, record)
    variants: dict[str, set[tuple[Any, ...]]] = {}
    for (_, record_name), shape in shapes.items():
        variants.setdefault(record_name, set()).add(shape)
    soap_names = {op.contract.name: op.name for op in named}
    return {
        (logical, record_name): (
            record_name
            if len(variants[record_name]) == 1
            else f"{soap_names[logical]}{record_name}"
        )
        for logical, record_name in shapes
    }


def _shape(op: NamedOperation, record: Record) -> tuple[Any, ...]:
    """A record's element names under ``op``'s names, nested records included."""
    return tuple(
        (op.fields[f.name], _shape(op, f.type) if isinstance(f.type, Record) else None)
        for f in record.fields
    )


def _add_binding(
    root: _Element, named: tuple[NamedOperation, ...], name: str, soap: str, service: str
) -> None:
    binding = _sub(root, WSDL, "binding", name=name, type=f"tns:{service}PortType")
    _sub(binding, soap, "binding", style="document", transport=HTTP_TRANSPORT)
    for op in named:
        operation = _sub(binding, WSDL, "operation", name=op.name)
        _sub(operation, soap, "operation", style="document", soapAction=op.soap_action)
        for direction in ("input", "output"):
            _sub(_sub(operation, WSDL, direction), soap, "body", use="literal")


def _add_service(root: _Element, service: str, location: str) -> None:
    # The SOAP 1.1 port comes first, so zeep's default binding is SOAP 1.1 (onec.md §1.5).
    element = _sub(root, WSDL, "service", name=service)
    port = _sub(element, WSDL, "port", name=f"{service}Soap", binding=f"tns:{service}SoapBinding")
    documentation = _sub(port, WSDL, "documentation")
    claim = etree.SubElement(documentation, f"{{{WSI}}}Claim", nsmap={"wsi": WSI})
    claim.set("conformsTo", BASIC_PROFILE)
    _sub(port, SOAP11, "address", location=location)
    port = _sub(
        element, WSDL, "port", name=f"{service}Soap12", binding=f"tns:{service}Soap12Binding"
    )
    _sub(port, SOAP12, "address", location=location)


if __name__ == "__main__":
    write_reference()
    print(f"wrote {REFERENCE_PATH}")
