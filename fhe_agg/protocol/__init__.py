"""What parties send each other: messages, wire framing, Merkle trees, evidence, domains, signing.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
