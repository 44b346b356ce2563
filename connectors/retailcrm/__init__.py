"""The RetailCRM connector (``type: retailcrm``): the order desk, and a bonus master."""
