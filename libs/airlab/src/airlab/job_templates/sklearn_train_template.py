"""airlab job template: fit a scikit-learn model and score it honestly.

The data is split once into a development part and a held-out test part by `split_seed`, which is the
same for every experiment of a research, so no search ever sees the test part. Each run then splits the
development part into train and validation by its own `seed`, fits on train, and reports the validation
score (what the search compares) and the test score (what the report compares), plus the test
predictions so the reviewer can bootstrap over test examples.

Follows the experiment contract: metrics.jsonl (a learning curve when asked), result.json, models/.
Settings: CONFIG below, overridden by config.json in the work dir, then by the JOB_CONFIG variable.
The coder rewrites only the function between the airlab:model markers."""

import csv
import datetime as dt
import inspect
import json
import math
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn import (
    compose,
    datasets,
    decomposition,
    ensemble,
    impute,
    linear_model,
    naive_bayes,
    neighbors,
    neural_network,
    pipeline,
    preprocessing,
    svm,
    tree,
)
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction import text
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import KFold, train_test_split

CONFIG = {
    "dataset": "digits",  # a name in LOADERS (digits, hastie, ...) or TABLES (loans, subscriptions), or csv
    "csv_path": "",  # for "csv": the file, mounted read-only
    "target": "",  # for "csv": the label column
    "task": "classification",  # classification | regression
    "metric": "accuracy",  # accuracy | roc_auc | f1_macro | rmse | mae | r2
    "model": "logistic_regression",  # used by the baseline's build_model
    "params": {},  # hyperparameters build_model reads
    "seed": 0,  # train/validation split and model randomness
    "split_seed": 0,  # the held-out test split: fixed for a whole research
    "test_fraction": 0.25,
    "validation_fraction": 0.2,
    "max_samples": 0,  # > 0: a smoke run on a small subset
    "learning_curve": False,  # also fit on growing fractions of train and log validation scores
    "save_model": True,
    "profile": False,  # also describe the table's columns and label in result.json (the baseline's runs)
}


def hastie(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear classification problem, the same 2000 samples every time."""
    x, y = datasets.make_hastie_10_2(n_samples=2000, random_state=0)
    return x, (y > 0).astype(int)


def friedman1(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear regression problem, the same 2000 samples every time."""
    return datasets.make_friedman1(n_samples=2000, noise=1.0, random_state=0)


LOADERS = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "diabetes": datasets.load_diabetes,
    "hastie": hastie,
    "friedman1": friedman1,
}


def _days(counts) -> np.ndarray:
    """Whole numbers of days as timedeltas, to add to or take from an array of dates."""
    return np.array([dt.timedelta(days=int(d)) for d in counts])


def loans() -> tuple[list[dict[str, str]], str]:
    """A loan book where the signal is in what the columns mean, the same 2000 rows every time: whether a
    loan defaulted follows the debt-to-income ratio (more so in the first year of a job), the days employed
    at application (two dates twenty years wide), income against the region's usual income, and hardship
    words in the officer's note. A model sees each raw column alone; the ratio, the date difference and the
    group effect are features someone has to write."""
    rng = np.random.RandomState(0)
    n = 2000
    regions = ["north", "south", "east", "west", "centre", "coast", "hills", "islands"]
    level = dict(zip(regions, np.linspace(-1.0, 1.0, len(regions)), strict=True))
    region = rng.choice(regions, size=n)
    income = np.exp(np.log(48000) + np.array([level[r] for r in region]) + rng.normal(0, 0.35, n))
    debt = income * np.exp(rng.normal(np.log(0.35), 0.5, n))
    applied = dt.date(2004, 1, 1) + _days(rng.randint(0, 7000, n))
    tenure_days = rng.gamma(1.5, 500, n).astype(int) + 30
    started = applied - _days(tenure_days)
    age = rng.randint(21, 70, n)
    region_income = {r: float(np.median(income[region == r])) for r in regions}
    relative = np.log(income / np.array([region_income[r] for r in region]))
    hardship = rng.rand(n) < 0.15
    new_job = tenure_days < 365
    logit = (
        6.0 * (debt / income - 0.4) * (1 + new_job) + 2.0 * new_job - 3.0 * relative + 1.5 * hardship
        + rng.normal(0, 0.3, n) - 1.0
    )  # fmt: skip
    defaulted = rng.rand(n) < 1 / (1 + np.exp(-logit))
    plain = ["asked about the rate", "wants a shorter term", "called twice about fees", "prefers e-mail",
             "no remarks", "moving house next year", "asked for a paper contract"]  # fmt: skip
    troubled = ["mentioned medical bills", "recent job loss in the family", "behind on rent last winter",
                "asked about payment holidays"]  # fmt: skip
    rows = []
    for i in range(n):
        note = rng.choice(troubled if hardship[i] else plain)
        rows.append({
            "applicant_id": f"A{100000 + i * 7919 % 900000:06d}",
            "region": str(region[i]),
            "age": str(int(age[i])),
            "income": f"{income[i]:.0f}",
            "debt": f"{debt[i]:.0f}",
            "employed_since": started[i].isoformat(),
            "applied_on": applied[i].isoformat(),
            "officer_note": f"{note}, application {i}",
            "defaulted": "yes" if defaulted[i] else "no",
        })  # fmt: skip
    return rows, "defaulted"


def subscriptions() -> tuple[list[dict[str, str]], str]:
    """Accounts of a software subscription, exported on days spread over four years, the same 2000 rows
    every time: whether an account churned follows its sessions per seat (more so once nobody has logged in
    for a month), the days since its last login at export, its price per seat against its plan's usual
    price, and complaint words in its last support ticket. The raw columns hold each part (sessions grow
    with seats, both dates move with the export day, plans set prices); the ratio, the date difference and
    the group effect are features someone has to write."""
    rng = np.random.RandomState(0)
    n = 2000
    plans = ["starter", "basic", "team", "business", "scale", "enterprise"]
    level = dict(zip(plans, np.linspace(-1.0, 1.0, len(plans)), strict=True))
    plan = rng.choice(plans, size=n)
    plan_level = np.array([level[p] for p in plan])
    seats = np.maximum(1, np.round(np.exp(rng.normal(np.log(12), 1.2, n) + plan_level))).astype(int)
    price = np.exp(np.log(40) + plan_level + rng.normal(0, 0.35, n))
    sessions = rng.poisson(seats * np.exp(rng.normal(np.log(6), 0.6, n)))
    exported = dt.date(2021, 1, 1) + _days(rng.randint(0, 1400, n))
    idle_days = rng.gamma(1.2, 18, n).astype(int)
    last_login = exported - _days(idle_days)
    signed_up = exported - _days(rng.randint(60, 3000, n))
    industry = rng.choice(["retail", "health", "finance", "education", "media", "logistics", "public"], n)
    plan_price = {p: float(np.median(price[plan == p])) for p in plans}
    relative = np.log(price / np.array([plan_price[p] for p in plan]))
    usage = np.log((sessions + 1) / seats / 6)
    complaint = rng.rand(n) < 0.15
    away = idle_days > 30
    logit = (
        -2.5 * usage * (1 + away) + 2.0 * away + 3.0 * relative + 1.0 * complaint + rng.normal(0, 0.3, n)
        - 1.0
    )  # fmt: skip
    churned = rng.rand(n) < 1 / (1 + np.exp(-logit))
    plain = ["asked for a copy of an invoice", "added two users", "asked about the API limits",
             "changed the billing e-mail", "asked for a training session", "asked for dark mode"]  # fmt: skip
    unhappy = ["asked how to cancel", "asked for a refund", "said a rival tool is cheaper",
               "reported the same outage again"]  # fmt: skip
    rows = []
    for i in range(n):
        ticket = rng.choice(unhappy if complaint[i] else plain)
        rows.append({
            "customer_id": f"C{100000 + i * 7919 % 900000:06d}",
            "plan": str(plan[i]),
            "industry": str(industry[i]),
            "seats": str(int(seats[i])),
            "price_per_seat": f"{price[i]:.2f}",
            "sessions_30d": str(int(sessions[i])),
            "signed_up": signed_up[i].isoformat(),
            "last_login": last_login[i].isoformat(),
            "exported_on": exported[i].isoformat(),
            "last_ticket": f"{ticket}, ticket {i}",
            "churned": "yes" if churned[i] else "no",
        })  # fmt: skip
    return rows, "churned"


# Built-in tables with named columns (dates, categories, text): loaded as a CSV would be.
TABLES = {"loans": loans, "subscriptions": subscriptions}
MODELS = {
    "logistic_regression": lambda seed, **p: linear_model.LogisticRegression(
        max_iter=2000, random_state=seed, **p
    ),
    "linear_regression": lambda seed, **p: linear_model.LinearRegression(**p),
    "ridge": lambda seed, **p: linear_model.Ridge(random_state=seed, **p),
    "random_forest_classifier": lambda seed, **p: ensemble.RandomForestClassifier(random_state=seed, **p),
    "random_forest_regressor": lambda seed, **p: ensemble.RandomForestRegressor(random_state=seed, **p),
    "gradient_boosting_classifier": lambda seed, **p: ensemble.GradientBoostingClassifier(
        random_state=seed, **p
    ),
    "gradient_boosting_regressor": lambda seed, **p: ensemble.GradientBoostingRegressor(
        random_state=seed, **p
    ),
    "mlp_classifier": lambda seed, **p: neural_network.MLPClassifier(max_iter=500, random_state=seed, **p),
    "mlp_regressor": lambda seed, **p: neural_network.MLPRegressor(max_iter=500, random_state=seed, **p),
    "hist_gradient_boosting_classifier": lambda seed, **p: ensemble.HistGradientBoostingClassifier(
        random_state=seed, **p
    ),
    "hist_gradient_boosting_regressor": lambda seed, **p: ensemble.HistGradientBoostingRegressor(
        random_state=seed, **p
    ),
    "svm_classifier": lambda seed, **p: svm.SVC(probability=True, random_state=seed, **p),
    "svm_regressor": lambda seed, **p: svm.SVR(**p),
    "knn_classifier": lambda seed, **p: neighbors.KNeighborsClassifier(**p),
    "knn_regressor": lambda seed, **p: neighbors.KNeighborsRegressor(**p),
}
# Kept importable for generated code: the coder's prompt lists these modules.
AVAILABLE = (decomposition, ensemble, linear_model, naive_bayes, neighbors, neural_network, pipeline,
             preprocessing, svm, tree)  # fmt: skip


# <airlab:features>
# Feature steps from the technique catalog (airlab.techniques), written here by the platform when an idea
# composes them: each adds columns made from named columns of the table, or changes how the model is fitted.
FEATURES: list = []
# </airlab:features>


# <airlab:model>
def build_model(params: dict, seed: int):
    """The estimator to evaluate: anything with fit/predict (and predict_proba for roc_auc)."""
    return pipeline.make_pipeline(preprocessing.StandardScaler(), MODELS[settings()["model"]](seed, **params))


# </airlab:model>


def settings() -> dict:
    config = dict(CONFIG)
    if Path("config.json").is_file():
        config.update(json.loads(Path("config.json").read_text()))
    config.update(json.loads(os.environ.get("JOB_CONFIG") or "{}"))
    # Settings that travelled through JSON may come back as floats: these must be whole.
    for name in ("seed", "split_seed", "max_samples"):
        config[name] = int(config[name])
    return config


MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
# A text column with more distinct values than this is not a category: free text, or an identifier.
MAX_CATEGORIES = 100
# Free text becomes this many hashed word counts, weighted by TF-IDF fitted on the training part.
TEXT_FEATURES = 256
# A column named like this whose values are all distinct names rows, it does not describe them.
IDENTIFIER_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key)$|^(id|uuid|guid)[_\s-]", re.IGNORECASE)
DATE_FORMATS = ("%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S")
DATE_PARTS = ("year", "month", "weekday", "day_of_year", "days_since_1970")


@dataclass
class Columns:
    """How a table's feature columns are prepared (indices into x), and what was done to which."""

    categorical: list[int] = field(default_factory=list)
    text: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Each column of x by name (a date's parts as "name.part"), and each of the table's columns by kind:
    # number, category, date, text or identifier (what feature steps and the profile refer to).
    names: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    # Feature steps fitted inside the model's pipeline, on the training part only: (kind, columns, value).
    fitted: list[tuple[str, list[int], float]] = field(default_factory=list)
    # Feature steps that change how the model is fitted: class_weights, target_log.
    fitting: list[str] = field(default_factory=list)
    # The label column's name ("label" for data without named columns).
    label: str = "label"

    def index(self, name: str) -> int:
        """The column of x a table column's name stands for (a date: its days since 1970)."""
        if self.kinds.get(name) == "date":
            return self.names.index(f"{name}.days_since_1970")
        return self.names.index(name)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> dt.datetime | None:
    """An ISO 8601 date or time (2024-03-01, 2024-03-01T09:30:00Z), or one of DATE_FORMATS."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    for layout in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, layout)
        except ValueError:
            continue
    return None


def date_parts(cells: list[str]) -> list[list[float]]:
    """A date column as DATE_PARTS, numbers a model can use (NaN where the cell is missing)."""
    parts = []
    for cell in cells:
        when = _date(cell) if cell.lower() not in MISSING else None
        if when is None:
            parts.append([math.nan] * len(DATE_PARTS))
            continue
        naive = when.replace(tzinfo=None) - (when.utcoffset() or dt.timedelta())
        parts.append([
            when.year, when.month, when.weekday(), when.timetuple().tm_yday,
            (naive - dt.datetime(1970, 1, 1)).total_seconds() / 86400,
        ])  # fmt: skip
    return [list(column) for column in zip(*parts, strict=True)]


def as_float(values):
    """Numeric columns of a CSV travel as objects (so they sit beside text ones): make them floats."""
    return np.asarray(values, dtype=float)


def as_text(values):
    """A free-text column's cells as strings for the vectorizer (a missing cell is empty text)."""
    return ["" if isinstance(v, float) else str(v) for v in np.asarray(values, dtype=object).ravel()]


def table_rows(config: dict) -> tuple[list[dict[str, str]], str, str]:
    """A table's rows, its label column and where it came from: a built-in table, or the CSV file."""
    if config["dataset"] in TABLES:
        rows, target = TABLES[config["dataset"]]()
        return rows, target, config["dataset"]
    path, target = config["csv_path"], config["target"]
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle)), target, path


def load(config: dict) -> tuple[np.ndarray, np.ndarray, Columns]:
    """Features, labels and how to prepare the feature columns. A table's missing cells (empty, NA, ?, ...)
    become NaN; a date column becomes its parts (DATE_PARTS); text with few values is a category, one-hot
    encoded; free text becomes hashed word counts weighted by TF-IDF; an identifier (every value distinct,
    named like one or a single word each) is dropped. All encodings are fitted inside the model's pipeline,
    on the training part only, and each is said in the run's notes. FEATURES' steps come last."""
    if config["dataset"] not in TABLES and config["dataset"] != "csv":
        x, y = LOADERS[config["dataset"]](return_X_y=True)
        names = [f"feature_{i}" for i in range(x.shape[1])]
        columns = Columns(names=names, kinds=dict.fromkeys(names, "number"))
        return with_features(x, columns)[0], y, columns
    rows, target, path = table_rows(config)
    if not rows or target not in rows[0]:
        raise SystemExit(f"{path}: no column {target!r} (the label column)")
    features = [name for name in rows[0] if name != target]
    if not features:
        raise SystemExit(f"{path}: no feature columns beside the label column {target!r}")
    columns: list[list] = []
    kinds = Columns(label=target)
    for name in features:
        cells = [(row[name] or "").strip() for row in rows]
        present = [c for c in cells if c.lower() not in MISSING]
        distinct = len(set(present))
        unique = len(present) >= 20 and distinct == len(present)
        dropped = f"column {name!r} dropped: an identifier (each of its values is distinct)"
        if unique and IDENTIFIER_NAME.search(name):
            kinds.notes.append(dropped)
            kinds.kinds[name] = "identifier"
            continue
        if all(_number(c) is not None for c in present):
            kinds.names.append(name)
            kinds.kinds[name] = "number"
            columns.append([_number(c) if c.lower() not in MISSING else math.nan for c in cells])
            continue
        if present and all(_date(c) is not None for c in present):
            columns.extend(date_parts(cells))
            kinds.names.extend(f"{name}.{part}" for part in DATE_PARTS)
            kinds.kinds[name] = "date"
            kinds.notes.append(f"column {name!r} is a date: used as its {', '.join(DATE_PARTS)}")
            continue
        if unique and not any(ch.isspace() for c in present for ch in c):  # codes, UUIDs, e-mail addresses
            kinds.notes.append(dropped)
            kinds.kinds[name] = "identifier"
            continue
        kinds_list = kinds.categorical if distinct <= MAX_CATEGORIES else kinds.text
        kinds_list.append(len(columns))
        kinds.names.append(name)
        kinds.kinds[name] = "category" if kinds_list is kinds.categorical else "text"
        columns.append([c if c.lower() not in MISSING else math.nan for c in cells])
        if kinds_list is kinds.text:
            kinds.notes.append(
                f"column {name!r} is free text ({distinct} distinct values): used as {TEXT_FEATURES} hashed "
                "word counts weighted by TF-IDF"
            )
    if not columns:
        raise SystemExit(f"{path}: no usable feature columns ({'; '.join(kinds.notes)})")
    prepared = kinds.categorical or kinds.text
    x = np.array(columns, dtype=object).T if prepared else np.array(columns, dtype=float).T
    x, kinds = with_features(x, kinds)
    labels = [(row[target] or "").strip() for row in rows]
    if any(label.lower() in MISSING for label in labels):
        raise SystemExit(f"{path}: the label column {target!r} has missing values: drop those rows first")
    if config["task"] == "classification":
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise SystemExit(f"{path}: the label column {target!r} has one class only: nothing to classify")
        return x, np.array([classes.index(label) for label in labels]), kinds
    numbers = [_number(label) for label in labels]
    if any(n is None for n in numbers):
        raise SystemExit(f"{path}: the label column {target!r} is not numeric, but the task is regression")
    return x, np.array(numbers, dtype=float), kinds


# The technique catalog's steps, by what they take: the kinds of column each named column must be.
STEP_COLUMNS = {
    "ratio": ("number", "number"),
    "difference": ("number", "number"),
    "product": ("number", "number"),
    "log": ("number",),
    "power": ("number",),
    "date_difference": ("date", "date"),
    "keywords": ("text",),
    "target_encoding": ("category",),
    "frequency_encoding": ("category",),
    "group_mean": ("number", "category"),
    "bins": ("number",),
    "class_weights": (),
    "target_log": (),
}
# What a column of each kind may stand for in a step: a date is a number of days, a whole-number code a
# category.
STEP_FITS = {
    "number": ("number", "date"),
    "category": ("category", "number"),
    "date": ("date",),
    "text": ("text",),
}


def _step_columns(number: int, step: dict, columns: Columns) -> list[str]:
    """The step's column names, checked against the table: a clear message for any that do not fit."""
    kind = step.get("kind")
    if kind not in STEP_COLUMNS:
        raise SystemExit(f"feature step {number}: unknown kind {kind!r}; known: {', '.join(STEP_COLUMNS)}")
    names = list(step.get("columns") or [])
    wanted = STEP_COLUMNS[kind]
    if len(names) != len(wanted):
        raise SystemExit(f"feature step {number} ({kind}): takes {len(wanted)} column(s), got {names}")
    for name, must in zip(names, wanted, strict=True):
        found = columns.kinds.get(name)
        if found is None:
            raise SystemExit(
                f"feature step {number} ({kind}): no column {name!r}; the columns: {', '.join(columns.kinds)}"
            )
        if found not in STEP_FITS[must]:
            raise SystemExit(f"feature step {number} ({kind}): column {name!r} is {found}, not {must}")
    return names


def with_features(x: np.ndarray, columns: Columns) -> tuple[np.ndarray, Columns]:
    """x with FEATURES' row-wise columns appended (ratios, differences, products, logs, powers, days
    between dates, keyword flags); steps that learn from data (encodings, group means, bins) and those that
    change the fit (class weights, a log target) are recorded for the pipeline. Each step is said in the
    notes."""
    added: list[np.ndarray] = []
    for number, step in enumerate(FEATURES, start=1):
        kind = step.get("kind")
        names = _step_columns(number, step, columns)
        value = float(step.get("value") or 0)

        def numbers(name: str) -> np.ndarray:
            return np.asarray(x[:, columns.index(name)], dtype=float)

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if kind in ("ratio", "difference", "product", "date_difference"):
                a, b = numbers(names[0]), numbers(names[1])
                made = (
                    a / np.where(b == 0, np.nan, b)
                    if kind == "ratio"
                    else a * b
                    if kind == "product"
                    else a - b
                )
                label = {"ratio": "/", "difference": "-", "product": "*", "date_difference": " days after "}[
                    kind
                ]
                added_name = f"{names[0]}{label}{names[1]}"
            elif kind == "log":
                made, added_name = signed_log(numbers(names[0])), f"log {names[0]}"
            elif kind == "power":
                exponent = value or 2.0
                made = np.sign(numbers(names[0])) * np.abs(numbers(names[0])) ** exponent
                added_name = f"{names[0]}^{exponent:g}"
            elif kind == "keywords":
                words = [str(w).lower() for w in step.get("words") or [] if str(w).strip()][:20]
                if not words:
                    raise SystemExit(f"feature step {number} (keywords): no words to look for")
                cells = as_text(x[:, columns.index(names[0])])
                for word in words:
                    added.append(np.array([float(word in c.lower()) for c in cells]))
                    columns.names.append(f"{names[0]} has {word!r}")
                columns.notes.append(f"feature step {number}: {names[0]!r} searched for {', '.join(words)}")
                continue
            elif kind in ("class_weights", "target_log"):
                columns.fitting.append(kind)
                continue
            else:  # fitted in the pipeline, on the training part only
                columns.fitted.append((kind, [columns.index(n) for n in names], value))
                columns.notes.append(
                    f"feature step {number}: {kind} of {' by '.join(names)} (fitted on train)"
                )
                continue
        added.append(np.where(np.isfinite(made), made, np.nan))
        columns.names.append(added_name)
        columns.notes.append(f"feature step {number}: added {added_name!r}")
    if not added:
        return x, columns
    return np.column_stack([x, *[a.astype(x.dtype) if x.dtype == object else a for a in added]]), columns


class Frequency(TransformerMixin, BaseEstimator):
    """A category's share of the training rows (0 for one never seen)."""

    def fit(self, x, y=None):
        cells = [str(v) for v in np.asarray(x, dtype=object).ravel()]
        values, counts = np.unique(cells, return_counts=True)
        self.shares_ = dict(zip(values.tolist(), (counts / len(cells)).tolist(), strict=True))
        return self

    def transform(self, x):
        return np.array([[self.shares_.get(str(v), 0.0)] for v in np.asarray(x, dtype=object).ravel()])


class GroupMean(TransformerMixin, BaseEstimator):
    """A number's mean within its row's group (fitted on the training rows), the row's gap to it and its
    share of it (`group_against`). A missing number sits at its group's mean (gap 0, share 1)."""

    def fit(self, x, y=None):
        values, groups = np.asarray(x[:, 0], dtype=float), [str(g) for g in x[:, 1]]
        self.overall_ = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
        sums: dict[str, list[float]] = {}
        for value, group in zip(values, groups, strict=True):
            if math.isfinite(value):
                sums.setdefault(group, []).append(value)
        self.means_ = {g: float(np.mean(v)) for g, v in sums.items()}
        return self

    def transform(self, x):
        values = np.asarray(x[:, 0], dtype=float)
        means = np.array([self.means_.get(str(g), self.overall_) for g in x[:, 1]])
        gap, share = group_against(values, means)
        return np.column_stack([means, np.nan_to_num(gap, nan=0.0), np.nan_to_num(share, nan=1.0)])


def group_against(values: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A number against its group's mean, as the gap and as the share (NaN where the mean is 0). Both: an
    amount that scales with its group (an income in a rich region) tells more as a share, one that shifts
    with it as a gap."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return values - means, values / np.where(means == 0, np.nan, means)


def fitted_step(kind: str, value: float):
    """A fitted feature step as a transformer of its columns."""
    if kind == "target_encoding":
        return pipeline.make_pipeline(
            impute.SimpleImputer(strategy="constant", fill_value="(missing)"),
            preprocessing.TargetEncoder(cv=KFold(n_splits=5, shuffle=True, random_state=0)),
        )
    if kind == "frequency_encoding":
        return Frequency()
    if kind == "group_mean":
        return GroupMean()
    bins = int(min(max(value or 5, 2), 50))
    return pipeline.make_pipeline(
        preprocessing.FunctionTransformer(as_float), impute.SimpleImputer(strategy="median"),
        preprocessing.KBinsDiscretizer(n_bins=bins, encode="ordinal", strategy="quantile"),
    )  # fmt: skip


def with_preparation(model, x: np.ndarray, columns: Columns):
    """`model` behind what a table's columns need: imputation of missing numbers, one-hot categories and
    hashed TF-IDF words of free text, and the fitted feature steps, every part fitted on the training data
    it is given."""
    prepared = set(columns.categorical) | set(columns.text)
    if not prepared and not columns.fitted and not np.isnan(np.asarray(x, dtype=float)).any():
        return model
    numeric = [i for i in range(x.shape[1]) if i not in prepared]
    steps = [
        ("numbers", pipeline.make_pipeline(
            preprocessing.FunctionTransformer(as_float), impute.SimpleImputer(strategy="median")
        ), numeric),
        ("categories", pipeline.make_pipeline(
            impute.SimpleImputer(strategy="constant", fill_value="(missing)"),
            preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        ), columns.categorical),
    ]  # fmt: skip
    for index in columns.text:  # a vectorizer takes one column of strings
        steps.append((f"text{index}", pipeline.make_pipeline(
            preprocessing.FunctionTransformer(as_text),
            text.HashingVectorizer(n_features=TEXT_FEATURES, alternate_sign=False, norm=None),
            text.TfidfTransformer(),
        ), index))  # fmt: skip
    for number, (kind, indices, value) in enumerate(columns.fitted):
        steps.append((f"{kind}{number}", fitted_step(kind, value), indices))
    # Dense output: not every model takes a sparse matrix.
    prepare = compose.ColumnTransformer([s for s in steps if s[2] != []], sparse_threshold=0)
    return pipeline.make_pipeline(prepare, model)


def signed_log(y):
    return np.sign(y) * np.log1p(np.abs(y))


def signed_exp(y):
    return np.sign(y) * np.expm1(np.abs(y))


def with_fitting(model, columns: Columns, task: str):
    """The fitting steps: a regression's target modelled on a log scale (predictions come back on the
    original one)."""
    if "target_log" not in columns.fitting:
        return model
    if task != "regression":
        columns.notes.append("feature step target_log not applied: the task is not regression")
        return model
    return compose.TransformedTargetRegressor(regressor=model, func=signed_log, inverse_func=signed_exp)


def fit_weights(model, y, columns: Columns, task: str) -> dict:
    """fit() arguments for class_weights: each class weighted by the inverse of its share of the training
    rows, routed to the final estimator; said in the notes when the estimator cannot take weights."""
    if "class_weights" not in columns.fitting:
        return {}
    if task != "classification":
        columns.notes.append("feature step class_weights not applied: the task is not classification")
        return {}
    classes, counts = np.unique(y, return_counts=True)
    per_class = dict(zip(classes.tolist(), (len(y) / (len(classes) * counts)).tolist(), strict=True))
    weights = np.array([per_class[label] for label in np.asarray(y).tolist()])
    route, estimator = [], model
    while isinstance(estimator, pipeline.Pipeline):
        name, estimator = estimator.steps[-1]
        route.append(name)
    if "sample_weight" not in inspect.signature(estimator.fit).parameters:
        columns.notes.append(
            f"feature step class_weights not applied: {type(estimator).__name__} takes no sample weights"
        )
        return {}
    return {"__".join([*route, "sample_weight"]) if route else "sample_weight": weights}


def predictions(metric: str, model, x) -> np.ndarray:
    if metric == "roc_auc":
        probabilities = model.predict_proba(x)
        return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities
    return model.predict(x)


def score(metric: str, y, predicted) -> float:
    if metric == "accuracy":
        return float(accuracy_score(y, predicted))
    if metric == "f1_macro":
        return float(f1_score(y, predicted, average="macro"))
    if metric == "roc_auc":
        if predicted.ndim == 1:
            return float(roc_auc_score(y, predicted))
        return float(roc_auc_score(y, predicted, multi_class="ovr"))
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted - y) ** 2)))
    if metric == "mae":
        return float(mean_absolute_error(y, predicted))
    return float(r2_score(y, predicted))


def _shown(value, kind: str = "") -> str:
    """A cell as the profile shows it: short, numbers rounded, dates as dates."""
    if kind == "date":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=math.floor(float(value)))).isoformat()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)[:40]


def profile(x_train, y_train, columns: Columns, config: dict, model, x_val, y_val) -> dict:
    """What the idea agent, the report and the dashboard learn about the data, from the training part
    only (the test part stays unseen): per table column its kind, missing share, distinct values, a few
    examples, its mutual information with the label, and how much the validation score drops when it is
    shuffled for the fitted model; and the label's balance or spread, and the model's per-class recall."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
    from sklearn.inspection import permutation_importance

    classification = config["task"] == "classification"
    rows = min(len(x_train), 2000)
    sample, labels = x_train[:rows], y_train[:rows]
    found = []
    for name, kind in columns.kinds.items():
        entry = {"name": name, "kind": kind}
        if kind == "identifier":
            entry["note"] = "dropped: an identifier"
            found.append(entry)
            continue
        cells = sample[:, columns.index(name)]
        missing = [isinstance(c, float) and math.isnan(c) for c in cells]
        present = [c for c, gone in zip(cells, missing, strict=True) if not gone]
        entry |= {
            "missing": round(sum(missing) / max(len(cells), 1), 4),
            "distinct": len({str(c) for c in present}),
            "examples": [_shown(c, kind) for c in list(dict.fromkeys(present))[:3]],
        }
        if kind in ("number", "date") and present:
            values = np.asarray(present, dtype=float)
            spread = {"low": np.min(values), "median": np.median(values), "high": np.max(values)}
            entry |= {k: _shown(float(v), kind) if kind == "date" else float(v) for k, v in spread.items()}
        if kind != "text" and len(present) >= 10:
            if kind == "category":
                codes = {v: i for i, v in enumerate(sorted({str(c) for c in present}))}
                feature = np.array([[codes.get(str(c), -1)] for c in cells], dtype=float)
            else:
                values = np.asarray(cells, dtype=float)
                feature = np.where(np.isnan(values), np.nanmedian(values), values).reshape(-1, 1)
            measure = mutual_info_classif if classification else mutual_info_regression
            information = measure(feature, labels, discrete_features=kind == "category", random_state=0)
            entry["association"] = round(float(information[0]), 4)
        found.append(entry)
    if len(x_val) <= 2000 and len(columns.names) <= 64:
        scoring = {
            "accuracy": "accuracy", "f1_macro": "f1_macro", "roc_auc": "roc_auc_ovr", "r2": "r2",
            "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error",
        }  # fmt: skip
        shuffled = permutation_importance(
            model, x_val, y_val, scoring=scoring[config["metric"]], n_repeats=3, random_state=0
        )
        drops = dict(zip(columns.names, shuffled.importances_mean.tolist(), strict=True))
        for entry in found:
            parts = [v for n, v in drops.items() if n == entry["name"] or n.startswith(f"{entry['name']}.")]
            if parts and entry["kind"] != "identifier":
                entry["importance"] = round(float(sum(parts)), 5)
    label: dict = {"name": columns.label}
    if classification:
        classes, counts = np.unique(y_train, return_counts=True)
        label["balance"] = {
            str(c): round(float(n / len(y_train)), 4) for c, n in zip(classes, counts, strict=True)
        }
        predicted = model.predict(x_val)
        label["recall"] = {
            str(c): round(float(np.mean(predicted[y_val == c] == c)), 4)
            for c in classes
            if np.any(y_val == c)
        }
    else:
        values = np.asarray(y_train, dtype=float)
        label |= {"mean": float(np.mean(values)), "std": float(np.std(values)),
                  "low": float(np.min(values)), "high": float(np.max(values))}  # fmt: skip
    # Whether the columns have names that mean something (a table), or are a built-in array's positions.
    named = config["dataset"] in TABLES or config["dataset"] == "csv"
    measured = {"rows": len(x_train), "named": named, "columns": found, "label": label}
    if named:
        measured["candidates"] = candidate_features(sample, labels, columns, found, classification)
    return measured


# Derived features the profile measures at most (the candidates it keeps, best first), and the numbers whose
# pairwise ratios it tries (the most telling by mutual information).
MAX_MEASURED_CANDIDATES = 10
CANDIDATE_NUMBERS = 5


def candidate_features(sample, labels, columns: Columns, found: list, classification: bool) -> list:
    """Feature steps a model on the raw columns cannot build for itself, measured on the training part: the
    days between two dates, a number against its category's mean (its gap or its share, the more telling),
    the ratio of two numbers. Each with its mutual information with the label and the most its columns have
    alone: the idea agent sees which derived features carry information their columns do not."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    measure = mutual_info_classif if classification else mutual_info_regression
    alone = {e["name"]: e.get("association", 0.0) for e in found}

    def numbers(name: str) -> np.ndarray:  # a number or date column: floats, NaN where missing
        return np.asarray(sample[:, columns.index(name)], dtype=float)

    def information(values: np.ndarray) -> float:
        finite = np.isfinite(values)
        if finite.sum() < 10:
            return 0.0
        filled = np.where(finite, values, np.median(values[finite])).reshape(-1, 1)
        return float(measure(filled, labels, random_state=0)[0])

    kinds = [(e["name"], e["kind"]) for e in found if e["kind"] != "identifier"]
    by_information = sorted(kinds, key=lambda nk: -alone.get(nk[0], 0.0))
    dates = [n for n, k in by_information if k == "date"]
    numeric = [n for n, k in by_information if k == "number"][:CANDIDATE_NUMBERS]
    categories = [n for n, k in by_information if k == "category"][:2]
    steps = [("date_difference", [a, b]) for i, a in enumerate(dates) for b in dates[i + 1 :]]
    steps += [("group_mean", [n, c]) for n in numeric for c in categories]
    steps += [("ratio", [a, b]) for i, a in enumerate(numeric) for b in numeric[i + 1 :]]
    measured = []
    for kind, names in steps:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if kind == "group_mean":  # the step's own gap and share (GroupMean): the more telling counts
                cells = sample[:, [columns.index(names[0]), columns.index(names[1])]]
                _, gap, share = GroupMean().fit(cells).transform(cells).T
                association = max(information(gap), information(share))
            else:
                a, b = numbers(names[0]), numbers(names[1])
                made = a - b if kind == "date_difference" else a / np.where(b == 0, np.nan, b)
                association = information(made)
        measured.append({
            "kind": kind, "columns": names, "association": round(association, 4),
            "columns_alone": round(max(alone.get(n, 0.0) or 0.0 for n in names), 4),
        })  # fmt: skip
    measured.sort(key=lambda c: -(c["association"] - c["columns_alone"]))
    return measured[:MAX_MEASURED_CANDIDATES]


def main() -> None:
    began = time.time()
    config = settings()
    seed, metric = int(config["seed"]), config["metric"]
    classification = config["task"] == "classification"
    x, y, columns = load(config)
    for note in columns.notes:
        print(note)
    x_dev, x_test, y_dev, y_test = train_test_split(
        x, y, test_size=config["test_fraction"], random_state=config["split_seed"],
        stratify=y if classification else None,
    )  # fmt: skip
    if config["max_samples"]:
        x_dev, y_dev = x_dev[: config["max_samples"]], y_dev[: config["max_samples"]]
        x_test, y_test = (
            x_test[: max(config["max_samples"] // 4, 20)],
            y_test[: max(config["max_samples"] // 4, 20)],
        )
    x_train, x_val, y_train, y_val = train_test_split(
        x_dev, y_dev, test_size=config["validation_fraction"], random_state=seed,
        stratify=y_dev if classification and not config["max_samples"] else None,
    )  # fmt: skip
    if config["learning_curve"]:
        with open("metrics.jsonl", "a") as handle:
            for step, fraction in enumerate((0.25, 0.5, 0.75)):
                count = max(int(len(x_train) * fraction), 10)
                partial = with_preparation(build_model(config["params"], seed), x, columns)
                partial.fit(x_train[:count], y_train[:count])
                value = score(metric, y_val, predictions(metric, partial, x_val))
                handle.write(
                    json.dumps({"step": step, "train_samples": count, f"val_{metric}": value}) + "\n"
                )
    model = with_fitting(
        with_preparation(build_model(config["params"], seed), x, columns), columns, config["task"]
    )
    model.fit(x_train, y_train, **fit_weights(model, y_train, columns, config["task"]))
    validation = score(metric, y_val, predictions(metric, model, x_val))
    test_predicted = predictions(metric, model, x_test)
    test = score(metric, y_test, test_predicted)
    if not (math.isfinite(validation) and math.isfinite(test)):
        raise SystemExit(f"the {metric} is not finite: validation {validation}, test {test}")
    with open("metrics.jsonl", "a") as handle:
        handle.write(
            json.dumps({"step": 3, "train_samples": len(x_train), f"val_{metric}": validation}) + "\n"
        )
    if config["save_model"]:
        Path("models").mkdir(exist_ok=True)
        Path("models/model.pkl").write_bytes(pickle.dumps(model))
    result = {
        "metrics": {metric: test, f"val_{metric}": validation},
        "seed": seed,
        "duration_seconds": time.time() - began,
        "config": config,
        "split": {"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        # What was done to the table's columns (dates, free text, identifiers), in words.
        "column_notes": columns.notes,
    }
    if config["profile"]:
        result["profile"] = profile(x_train, y_train, columns, config, model, x_val, y_val)
    if len(y_test) <= 5000:
        result["test_targets"] = np.asarray(y_test).tolist()
        result["test_predictions"] = np.round(np.asarray(test_predicted, dtype=float), 6).tolist()
    Path("result.json").write_text(json.dumps(result))
    print(json.dumps(result["metrics"]))


if __name__ == "__main__":
    main()
