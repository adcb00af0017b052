"""Domain-separation labels: one registry, distinct, prefix-free, and nothing left out of it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import fhe_agg
from fhe_agg.protocol._domains import DOMAINS

_LITERAL = re.compile(r"""b?["'](fhe[-_]agg/[^"'\s]*)["']""")
_ROOT = Path(fhe_agg.__file__).parent


def test_labels_are_distinct_and_none_is_a_prefix_of_another() -> None:
    labels = [d.label for d in DOMAINS.values()]
    assert len(set(labels)) == len(labels)
    for a, b in itertools.permutations(labels, 2):
        assert not b.startswith(a), (a, b)


def test_every_label_in_the_source_is_registered_where_it_is_used() -> None:
    registered = {d.label.decode(): d for d in DOMAINS.values()}
    found: dict[str, set[str]] = {}
    for path in _ROOT.rglob("*.py"):
        if path.name == "_domains.py":
            continue
        module = ".".join(path.relative_to(_ROOT).with_suffix("").parts)
        for label in _LITERAL.findall(path.read_text()):
            found.setdefault(label, set()).add(module)
    unregistered = sorted(set(found) - set(registered))
    assert not unregistered, f"labels missing from fhe_agg.protocol._domains: {unregistered}"
    for label, modules in found.items():
        assert registered[label].module in modules, (label, modules)
    unused = sorted(set(registered) - set(found))
    assert not unused, f"registered labels no module uses: {unused}"
