"""A federation client: clip, weight, encrypt, prove and sign one update; its store and batches.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
