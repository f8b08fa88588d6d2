"""Check what a draft calls against the libraries it calls, without running it, and make the repairs
that have one right answer.

A small model often knows the class it wants but not where it lives (`linear_model.SVC`), misspells it
(`HistogramGradientBoostingRegressor`), forgets an import, or passes `random_state` to an estimator that
takes none. Each of these has exactly one fix, so the coder makes it and records it; the code stays the
model's and the report says what was changed. What has no single fix (a class that exists nowhere, a
keyword the estimator does not take) becomes a problem that names the choices, fed back to the model
instead of a smoke run's traceback."""

from __future__ import annotations

import ast
import builtins
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from airlab_coder.api_index import ApiIndex, Member, load_index
from airlab_coder.ast_names import bound_names, dotted, is_scalar
from airlab_coder.hyperparameters import WholeCounts, param_read, unread_hyperparameters, unread_problem
from airlab_coder.template_names import template_namespace

# How close a misspelt name must be to a real one to be corrected without asking (difflib's ratio).
SPELLING_CUTOFF = 0.85
# Estimators that need probability=True before they can give the probabilities a metric or a soft vote
# asks for.
NEEDS_PROBABILITY_FLAG = frozenset(("sklearn.svm.SVC", "sklearn.svm.NuSVC"))
LIBRARY = {"sklearn": "sklearn", "pytorch": "torch"}
# How a transformer's name ends (a step before the model, not the model of the task's role).
TRANSFORMER_ENDINGS = ("Transformer", "Scaler", "Features", "Encoder", "Imputer", "Selector", "Sampler")
# scikit-learn ensembles whose `estimators` are (name, estimator) pairs.
ENSEMBLES_OF_NAMED_ESTIMATORS = frozenset(
    ("VotingClassifier", "VotingRegressor", "StackingClassifier", "StackingRegressor")
)
# The estimator role a task's model has (scikit-learn).
ROLES = {"classification": "classifier", "regression": "regressor"}


@dataclass
class ApiReview:
    code: str
    repairs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Searched hyperparameters the code never reads (also said in `problems`).
    unread: list[str] = field(default_factory=list)


class _Reviewer(ast.NodeTransformer):
    def __init__(
        self, index: ApiIndex, template: str, tree: ast.Module, needs_probability: bool, task: str
    ) -> None:
        self.index = index
        # The template's own classes and helpers a draft calls (MLP, UNet, conv_block), unless the draft
        # defines one of that name itself.
        drafted = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
        namespace = template_namespace(template)
        self.template_members = {n: m for n, m in namespace.members.items() if n not in drafted}
        self.library = LIBRARY[template]
        self.role = ROLES.get(task, "") if template == "sklearn" else ""
        self.names: dict[str, str] = dict(namespace.imports)
        self.defined = bound_names(tree) | namespace.defined | set(dir(builtins))
        self.needs_probability = needs_probability
        self.repairs: list[str] = []
        self.problems: list[str] = []
        self.imports: dict[str, str] = {}  # local name -> "from X import Y" lines to add
        self.space: dict[str, bool] = {}  # searched hyperparameter -> whole number
        for node in tree.body:
            self._learn_import(node)

    def _learn_import(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self.names[alias.asname] = alias.name
                else:
                    self.names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _path(self, parts: list[str]) -> str | None:
        head = self.names.get(parts[0])
        return ".".join([head, *parts[1:]]) if head else None

    def _local_for(self, module: str) -> str:
        """A name in the draft that refers to the module, imported when the template has none."""
        for local, path in self.names.items():
            if path == module:
                return local
        parent, _, leaf = module.rpartition(".")
        self.imports[leaf] = f"from {parent} import {leaf}"
        self.names[leaf] = module
        return leaf

    def _split(self, path: str) -> tuple[str, str] | None:
        module, _, name = path.rpartition(".")
        return (module, name) if module and self.index.is_module(module) else None

    def _home(self, name: str) -> str | None:
        homes = self.index.homes(name, self.library)
        return homes[0] if homes else None

    def _reference(self, module: str, name: str) -> ast.expr:
        local = ast.Name(id=self._local_for(module), ctx=ast.Load())
        return ast.Attribute(value=local, attr=name, ctx=ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        self._check_cast(node)
        parts = dotted(node.func)
        if parts is None:
            return node
        shown = ".".join(parts)
        resolved = self._resolve(node, parts, shown)
        if resolved is None:
            return node
        module, name, member = resolved
        self._check_arguments(node, f"{module}.{name}", ast.unparse(node.func), member)
        return node

    def _resolve(self, node: ast.Call, parts: list[str], shown: str) -> tuple[str, str, Member] | None:
        """The library member a call calls, after repairing where it lives or how it is spelt; None when
        the call is not to a library this template uses (or has a problem recorded)."""
        if parts[0] not in self.names:
            if len(parts) == 1 and parts[0] in self.template_members:
                return "template", parts[0], self.template_members[parts[0]]
            if parts[0] in self.defined:
                return None  # the draft's own or the template's definition
            # Undefined: a library name written bare (`SVC(...)`) or under a module never imported
            # (`logistic_regression.LogisticRegression(...)`).
            name = parts[-1]
            home = self._home(name)
            if home is None or (len(parts) > 1 and parts[0] in self.defined):
                return None  # left to the undefined-name check
            node.func = self._reference(home, name)
            self.repairs.append(f"`{shown}` is not defined: used {ast.unparse(node.func)} ({home})")
            member = self.index.member(home, name)
            return (home, name, member) if member else None
        path = self._path(parts)
        if path is None or not (path.startswith(f"{self.library}.") or path == self.library):
            return None
        split = self._split(path)
        if split is None:
            return None
        module, name = split
        member = self.index.member(module, name)
        if member is not None:
            return module, name, member
        home = self._home(name)
        if home is not None:
            node.func = self._reference(home, name)
            used = ast.unparse(node.func)
            self.repairs.append(f"`{shown}` does not exist: {name} is in {home}, used {used}")
            member = self.index.member(home, name)
            return (home, name, member) if member else None
        choices = [n for n in self.index.modules[module] if not n.startswith("_")]
        close = difflib.get_close_matches(name, choices, n=1, cutoff=SPELLING_CUTOFF)
        if close:
            corrected = close[0]
            node.func = self._reference(module, corrected)
            self.repairs.append(f"`{shown}` does not exist: used {ast.unparse(node.func)} (spelling)")
            member = self.index.member(module, corrected)
            return (module, corrected, member) if member else None
        keywords = {k.arg for k in node.keywords if k.arg and k.arg != "random_state"}
        role = "" if name.endswith(TRANSFORMER_ENDINGS) else self.role
        named_like = self.index.starting_with(name, self.library, keywords, role) if role else []
        if len(named_like) == 1:
            # An abbreviation of one class in the task's role (MLP -> neural_network.MLPRegressor).
            home, full = named_like[0]
            node.func = self._reference(home, full)
            self.repairs.append(
                f"`{shown}` does not exist: used {ast.unparse(node.func)}, the only {role} whose name starts "
                f"with {name}" + (f" and that takes {', '.join(sorted(keywords))}" if keywords else "")
            )
            member = self.index.member(home, full)
            return (home, full, member) if member else None
        fitting = self.index.taking(module, keywords, role) if keywords else []
        if len(fitting) == 1:
            # The only class of that module (in the task's role) that takes every argument given.
            node.func = self._reference(module, fitting[0])
            taken = ", ".join(sorted(keywords))
            self.repairs.append(
                f"`{shown}` does not exist: used {ast.unparse(node.func)}, the only {role or 'class'} in "
                f"{module} that takes {taken}"
            )
            member = self.index.member(module, fitting[0])
            return (module, fitting[0], member) if member else None
        classes = fitting or self.index.classes(module)
        listed = ", ".join(classes[:30]) + (", ..." if len(classes) > 30 else "")
        which = f"Its classes that take {', '.join(sorted(keywords))}" if fitting else "Its classes"
        self.problems.append(f"`{shown}` does not exist: {module} has no {name}. {which}: {listed}")
        return None

    def _check_arguments(self, node: ast.Call, path: str, shown: str, member: Member) -> None:
        if member.keywords is None:
            return
        if not member.any_keyword:
            for keyword in list(node.keywords):
                if keyword.arg is None or keyword.arg in member.keywords:
                    continue
                if keyword.arg == "random_state":
                    # The prompt asks for the seed "where the estimator takes one"; this one takes none.
                    node.keywords.remove(keyword)
                    self.repairs.append(f"{shown} takes no random_state: removed it")
                    continue
                close = difflib.get_close_matches(keyword.arg, member.keywords, n=1, cutoff=SPELLING_CUTOFF)
                if close and close[0] not in {k.arg for k in node.keywords} and is_scalar(keyword.value):
                    # A near miss given one number (`n_degree=2`) means the close name; a list or a call
                    # may mean something else (`quantiles=[0.25, 0.75]` is not `n_quantiles`), so it is told.
                    self.repairs.append(f"{shown} takes no `{keyword.arg}`: used `{close[0]}` (spelling)")
                    keyword.arg = close[0]
                    continue
                module, _, own = path.rpartition(".")
                others = [c for c in self.index.taking(module, {keyword.arg}, member.role) if c != own]
                told = f"{shown} takes no keyword `{keyword.arg}`; it takes: {', '.join(member.keywords)}"
                if close:
                    told += f" (did you mean `{close[0]}`?)"
                elif others:
                    told += f". Classes of {module} that take `{keyword.arg}`: {', '.join(others[:12])}"
                self.problems.append(told)
        named = {k.arg for k in node.keywords}
        splatted = any(isinstance(a, ast.Starred) for a in node.args) or None in named
        if not splatted and 0 <= member.positional < len(node.args):
            takes = ", ".join(member.keywords[: member.positional])
            self.problems.append(
                f"{shown}({takes}) takes at most {member.positional} argument(s) by position, given "
                f"{len(node.args)}"
            )
        missing = [n for n in member.keywords[len(node.args) : member.required] if n not in named]
        if missing and not splatted:
            hint = ""
            module, _, name = path.rpartition(".")
            similar = difflib.get_close_matches(name, self.index.classes(module), n=1, cutoff=0.4)
            if member.kind == "function" and self.library == "sklearn" and similar:
                step = f"{module.removeprefix('sklearn.')}.{similar[0]}"
                hint = f": it transforms data at once; a pipeline step is an estimator such as {step}"
            self.problems.append(f"{shown}() is called without {', '.join(missing)}{hint}")
        if path.endswith(".make_pipeline"):
            self._check_pipeline_steps(node)
        if path.rpartition(".")[2] in ENSEMBLES_OF_NAMED_ESTIMATORS:
            self._name_estimators(node, shown)
        asked = any(k.arg == "probability" for k in node.keywords)
        if path in NEEDS_PROBABILITY_FLAG and self.needs_probability and not asked:
            node.keywords.append(ast.keyword(arg="probability", value=ast.Constant(True)))
            self.repairs.append(f"{shown} gives probabilities only with probability=True: added it")

    def _check_cast(self, node: ast.Call) -> None:
        """`int(params["dropout"])` for a hyperparameter searched as a real number truncates it to 0 (and
        `float(...)` of a count makes it a float): the cast follows the search space."""
        if not (isinstance(node.func, ast.Name) and node.func.id in ("int", "float") and len(node.args) == 1):
            return
        name = param_read(node.args[0])
        if name is None or name not in self.space:
            return
        wanted = "int" if self.space[name] else "float"
        if node.func.id != wanted:
            kind = "a whole number" if wanted == "int" else "a real number"
            self.repairs.append(f"{node.func.id}() of `{name}`, searched as {kind}: used {wanted}()")
            node.func.id = wanted

    def _member_of(self, node: ast.expr) -> Member | None:
        """The library member a (repaired) call expression calls, if any."""
        if not isinstance(node, ast.Call):
            return None
        parts = dotted(node.func)
        path = self._path(parts) if parts else None
        split = self._split(path) if path else None
        return self.index.member(*split) if split else None

    def _check_pipeline_steps(self, node: ast.Call) -> None:
        """Every step of a pipeline but the last must transform the data; a model there cannot."""
        models = [
            ast.unparse(step.func)
            for step in node.args[:-1]
            if isinstance(step, ast.Call)
            and (member := self._member_of(step)) is not None
            and member.role in ("classifier", "regressor")
        ]  # fmt: skip
        if models:
            self.problems.append(
                "pipeline.make_pipeline: every step but the last must transform the data, and "
                f"{', '.join(models)} cannot. To combine models use ensemble.VotingClassifier/VotingRegressor"
                ' or ensemble.StackingClassifier/StackingRegressor(estimators=[("name", model), ...])'
            )

    def _name_estimators(self, node: ast.Call, shown: str) -> None:
        """`estimators=[SVC(), ...]` -> `estimators=[("svc", SVC()), ...]`: the names are required and
        carry no meaning."""
        for keyword in node.keywords:
            if keyword.arg != "estimators" or not isinstance(keyword.value, ast.List):
                continue
            items = keyword.value.elts
            if not items or not all(isinstance(item, ast.Call) for item in items):
                continue
            names: list[str] = []
            for item in items:
                assert isinstance(item, ast.Call)
                base = (dotted(item.func) or ["model"])[-1].lower()
                names.append(base if base not in names else f"{base}_{len(names)}")
            pairs = zip(names, items, strict=True)
            keyword.value.elts = [ast.Tuple([ast.Constant(n), item], ctx=ast.Load()) for n, item in pairs]
            self.repairs.append(f"{shown}: each estimator named (it takes (name, estimator) pairs)")

    def fix_imports(self, tree: ast.Module) -> None:
        """`from sklearn.decomposition import QuantileTransformer`: the import would fail; its uses were
        pointed at the class's real module, so the import goes."""
        for node in tree.body:
            if not (isinstance(node, ast.ImportFrom) and node.module and self.index.is_module(node.module)):
                continue
            kept = []
            for alias in node.names:
                known = self.index.member(node.module, alias.name) is not None
                if known or self.index.is_module(f"{node.module}.{alias.name}") or node.module == "torch":
                    # torch's own namespace is indexed by its __all__, which leaves out its submodules.
                    kept.append(alias)
                elif home := self._home(alias.name):
                    self.repairs.append(
                        f"`from {node.module} import {alias.name}` would fail: {alias.name} is in {home}"
                    )
                    if alias.asname is None:
                        self.imports[alias.name] = f"from {home} import {alias.name}"
                    else:
                        kept.append(alias)
                        node.module = home
                else:
                    kept.append(alias)
                    told = f"`from {node.module} import {alias.name}`: {node.module} has no {alias.name}"
                    self.problems.append(told)
            node.names = kept
        tree.body = [n for n in tree.body if not (isinstance(n, ast.ImportFrom) and not n.names)]


def review_calls(
    code: str,
    template: str,
    *,
    task: str = "",
    needs_probability: bool = False,
    space: Mapping[str, bool] | None = None,
    index: ApiIndex | None = None,
) -> ApiReview:
    """Check the draft's calls; the code with the repairs made, what was repaired, and what is wrong.
    `space`: each searched hyperparameter and whether it is a whole number."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)  # the syntax check reports it
    soft_vote = any(
        isinstance(n, ast.keyword) and n.arg == "voting" and isinstance(n.value, ast.Constant)
        and n.value.value == "soft"
        for n in ast.walk(tree)
    )  # fmt: skip
    reviewer = _Reviewer(index or load_index(), template, tree, needs_probability or soft_vote, task)
    reviewer.space = dict(space or {})
    reviewer.visit(tree)
    reviewer.fix_imports(tree)
    counts = WholeCounts(reviewer.space)
    counts.visit(tree)
    reviewer.repairs += counts.repairs
    searched = [name for name in reviewer.space if name not in template_namespace(template).reads]
    unread = unread_hyperparameters(tree, searched)
    if unread:
        reviewer.problems.append(unread_problem(unread))
    if not reviewer.repairs:
        return ApiReview(code, [], reviewer.problems, unread)
    imports = [ast.parse(line).body[0] for line in sorted(set(reviewer.imports.values()))]
    tree.body[:0] = imports
    repaired = ast.unparse(ast.fix_missing_locations(tree))
    return ApiReview(repaired, reviewer.repairs, reviewer.problems, unread)
