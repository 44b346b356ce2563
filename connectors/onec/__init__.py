"""The 1C connector (``type: onec``): the bonus master in most shops, and the ERP."""
