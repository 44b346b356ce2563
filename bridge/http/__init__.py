"""The HTTP face of the bridge (aiohttp)."""
