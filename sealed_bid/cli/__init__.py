"""The ``sealed-bid`` command line: a thin shell over the client library and services."""
