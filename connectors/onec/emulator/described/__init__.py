"""An emulated 1C service described apart from the connector (DESCRIBED.md).

Placeholder docstring, replaced below.
"""

from connectors.onec.emulator.described.description import Description, load_description
from connectors.onec.emulator.described.server import DescribedEmulator

__all__ = ["DescribedEmulator", "Description", "load_description"]
