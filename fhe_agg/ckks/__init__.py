"""The CKKS layer: parameters, keys, the SEAL adapter, flooding and DP noise, packing, randomness.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
