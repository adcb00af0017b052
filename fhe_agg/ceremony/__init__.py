"""The dealerless key ceremony: joint public key, t-of-n shares, and its state between steps.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
