"""Assertions shared by the identity CLI tests."""

from __future__ import annotations

from typing import Any


def one_line_error(result: Any, *fragments: str) -> str:
    """Assert a non-zero exit with exactly one ``error:`` line on stderr containing ``fragments``."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])
