"""The 1C connector: intake of changes 1C pushes to ``POST /hooks/{system}``."""
