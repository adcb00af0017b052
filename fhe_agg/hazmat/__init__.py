"""Raw CKKS / RNS / SEAL-format primitives. You can hurt yourself here.

Nothing in this package checks that what you compute is safe to release: it adds, multiplies and
serializes polynomials exactly as told. Use the role classes exported by :mod:`fhe_agg` unless
you are building a new protocol step and have read ``DESIGN.md``.
"""
