"""The demo shop: a product page of a fictional shop with the web chat widget (``python -m shop serve``)."""
