"""Optional parts of airlab, each installed by an extra of the `airlab` distribution (the repository's root
pyproject.toml): a part whose package is missing says which extra installs it."""

from __future__ import annotations

import importlib.util

from airlab.errors import LabError


class MissingExtra(LabError):
    code = "FAILED_PRECONDITION"


def require(module: str, extra: str, purpose: str, hint: str = "") -> None:
    """Raise MissingExtra, naming the extra to install, when `module` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{purpose} needs the {module!r} package, which is not installed: pip install 'airlab[{extra}]'"
            + (f" ({hint})" if hint else "")
        )
