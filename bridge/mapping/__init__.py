"""Mapping files (``mappings/<source>_<entity>_to_<target>.yaml``): one flow's translation.

A file is loaded once into a :class:`FlowMapping` (rules compiled, tables indexed); its
:meth:`FlowMapping.apply` turns one source document into the target's shape, or says why
the change does not flow, or raises :class:`MappingFailed` naming file, line and rule.

Modules: ``paths`` (dotted paths), ``values`` (conversions), ``transforms`` (the closed
set), ``tables``, ``conditions`` (filters), ``rules`` and ``compiler`` (file → rules, with
every problem), ``engine`` (apply), ``loader`` (public entry points), ``routes`` (the files
config routes name, for ``bridge check``).

::

    mapping = load_mapping(Path("mappings/retailcrm_order_to_onec.yaml"))
    result = mapping.apply(order)      # MapResult(document={...}) or MapResult(None, "why")
    result = mapping.apply(order, creating=False)  # the target holds it: no `when: create`
"""

from bridge.mapping.compiler import Compiled
from bridge.mapping.engine import FlowMapping, MapResult
from bridge.mapping.errors import MappingFailed
from bridge.mapping.loader import check_mapping, inspect_mapping, load_mapping
from bridge.mapping.routes import check_route_mappings, inspect_route_mappings, mapping_path
from bridge.mapping.transforms import TRANSFORMS

__all__ = [
    "TRANSFORMS",
    "Compiled",
    "FlowMapping",
    "MapResult",
    "MappingFailed",
    "check_mapping",
    "check_route_mappings",
    "inspect_mapping",
    "inspect_route_mappings",
    "load_mapping",
    "mapping_path",
]
