"""Whole federations run in one process, for demos, measurements and ``fhe-agg simulate``.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
