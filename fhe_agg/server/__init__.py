"""The aggregation server: ingest, verify and sum updates; its stores; the server side of a round.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
