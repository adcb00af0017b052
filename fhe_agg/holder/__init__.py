"""A key holder: check an aggregate, decrypt it partially (or vote to abort); combine partials.

Internal: the public names are re-exported by :mod:`fhe_agg`."""
