"""The public API of the libraries that experiment code calls, as data: for each module, its names, what
each is (class or function), and the keyword arguments it takes.

Built from the installed scikit-learn and PyTorch by `make api-index` and shipped with the coder, which
checks drafts against it without importing either library."""

from __future__ import annotations

import importlib
import inspect
import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

INDEX_FILE = Path(__file__).with_name("api_index.json")
# scikit-learn's modules a model can be built from (not data sets, metrics or search utilities).
SKLEARN_MODULES = (
    "calibration", "cluster", "compose", "covariance", "cross_decomposition", "decomposition",
    "discriminant_analysis", "dummy", "ensemble", "feature_extraction", "feature_selection", "frozen",
    "gaussian_process", "gaussian_process.kernels", "impute", "isotonic", "kernel_approximation",
    "kernel_ridge", "linear_model", "manifold", "mixture", "multiclass", "multioutput", "naive_bayes",
    "neighbors", "neural_network", "pipeline", "preprocessing", "random_projection", "semi_supervised",
    "svm", "tree",
)  # fmt: skip
TORCH_MODULES = ("nn", "nn.functional", "nn.init", "optim", "optim.lr_scheduler")


@dataclass(frozen=True)
class Member:
    """One public name of a module."""

    kind: str  # "class", "function" or "other"
    # The keyword arguments it takes (a class: its constructor's); None when it cannot be told.
    keywords: tuple[str, ...] | None = None
    # It takes **kwargs too, so any keyword is accepted.
    any_keyword: bool = False
    # How many arguments it needs at least (those without a default; the first of `keywords`).
    required: int = 0
    # A class that can be fitted (a scikit-learn estimator) or a network layer (a torch.nn.Module).
    buildable: bool = False
    # A scikit-learn estimator's role: "classifier", "regressor", "transformer" or "other".
    role: str = ""
    # How many arguments it takes by position at most; -1: any number (or unknown).
    positional: int = -1


def _member(value: Any) -> dict[str, Any]:
    kind = "class" if inspect.isclass(value) else "function" if callable(value) else "other"
    entry: dict[str, Any] = {"kind": kind}
    if kind == "class" and (hasattr(value, "fit") or hasattr(value, "forward")):
        entry["buildable"] = True
    if kind == "class" and hasattr(value, "fit"):
        entry["role"] = _role(value)
    if kind == "other":
        return entry
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # a builtin without a signature: names only
        return entry
    parameters = list(signature.parameters.values())
    entry["keywords"] = [
        p.name for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name != "self"
    ]  # fmt: skip
    entry["any_keyword"] = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
    if not any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        entry["positional"] = sum(
            p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            and p.name != "self"
            for p in parameters
        )
    entry["required"] = sum(
        p.default is inspect.Parameter.empty and p.name != "self"
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
    return entry


def _role(estimator_class: Any) -> str:
    """What a scikit-learn estimator is, from its tags (its name when it cannot be built without
    arguments)."""
    name = estimator_class.__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = estimator_class().__sklearn_tags__().estimator_type
    except Exception:
        endings = {"Classifier": "classifier", "Regressor": "regressor"}
        kind = next((role for end, role in endings.items() if name.endswith(end)), "")
    if kind in ("classifier", "regressor"):
        return str(kind)
    return "transformer" if hasattr(estimator_class, "transform") else "other"


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted(set(names))


def build_index() -> dict[str, Any]:
    """The index of the installed libraries (imports both; run by `make api-index` and its test only)."""
    import sklearn
    import torch

    modules: dict[str, dict[str, Any]] = {}
    for package, names in (("sklearn", SKLEARN_MODULES), ("torch", TORCH_MODULES)):
        for name in names:
            module = importlib.import_module(f"{package}.{name}")
            members = {}
            for member in _public_names(module):
                value = getattr(module, member, None)
                if value is not None and not inspect.ismodule(value):
                    members[member] = _member(value)
            modules[f"{package}.{name}"] = members
    # torch's own namespace: its names only (most are builtins without a signature).
    modules["torch"] = {n: {"kind": "other"} for n in _public_names(torch)}
    return {"versions": {"sklearn": sklearn.__version__, "torch": torch.__version__}, "modules": modules}


def dump(index: dict[str, Any]) -> str:
    return json.dumps(index, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


class ApiIndex:
    """Lookups over the index: a module's member, and where else in a library a name is defined."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.versions: dict[str, str] = data["versions"]
        self.modules: dict[str, dict[str, Member]] = {
            module: {
                name: Member(
                    entry["kind"],
                    tuple(entry["keywords"]) if "keywords" in entry else None,
                    bool(entry.get("any_keyword", False)),
                    int(entry.get("required", 0)),
                    bool(entry.get("buildable", False)),
                    str(entry.get("role", "")),
                    int(entry.get("positional", -1)),
                )
                for name, entry in members.items()
            }
            for module, members in data["modules"].items()
        }

    def member(self, module: str, name: str) -> Member | None:
        return self.modules.get(module, {}).get(name)

    def is_module(self, path: str) -> bool:
        return path in self.modules

    def homes(self, name: str, library: str) -> list[str]:
        """The modules of a library ("sklearn", "torch") where a name is an estimator, a layer or (in
        torch) a function, shortest path first."""
        found = [
            m for m, members in self.modules.items()
            if m.split(".")[0] == library and name in members
            and (members[name].buildable or (library == "torch" and members[name].kind == "function"))
        ]  # fmt: skip
        return sorted(found, key=lambda m: (m.count("."), m))

    def classes(self, module: str) -> list[str]:
        return sorted(n for n, m in self.modules.get(module, {}).items() if m.kind == "class")

    def starting_with(
        self, prefix: str, library: str, keywords: set[str], role: str
    ) -> list[tuple[str, str]]:
        """(module, class) of a library whose class name starts with `prefix` (MLP -> MLPRegressor), in
        a role ("" for any), taking all these keywords; each class once, at its shortest module path."""
        found: dict[str, str] = {}
        for module in sorted(self.modules, key=lambda m: (m.count("."), m)):
            if module.split(".")[0] != library:
                continue
            for name in self.taking(module, keywords, role):
                if name.startswith(prefix) and name != prefix:
                    found.setdefault(name, module)
        return sorted((module, name) for name, module in found.items())

    def taking(self, module: str, keywords: set[str], role: str) -> list[str]:
        """The classes of a module in a role ("" for any) that take all these keywords."""
        return sorted(
            name for name, m in self.modules.get(module, {}).items()
            if m.kind == "class" and (not role or m.role == role)
            and (m.any_keyword or (m.keywords is not None and keywords <= set(m.keywords)))
        )  # fmt: skip


@cache
def load_index() -> ApiIndex:
    return ApiIndex(json.loads(INDEX_FILE.read_text()))
