"""The Bitrix24 connector (``type: bitrix``): the web shop; never a bonus master."""
