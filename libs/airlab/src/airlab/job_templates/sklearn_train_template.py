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
from sklearn.feature_extraction import text
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

CONFIG = {
    "dataset": "digits",  # digits | breast_cancer | wine | diabetes | hastie | friedman1 | csv
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


def load(config: dict) -> tuple[np.ndarray, np.ndarray, Columns]:
    """Features, labels and how to prepare the feature columns (nothing to do for built-in data). A CSV's
    missing cells (empty, NA, ?, ...) become NaN; a date column becomes its parts (DATE_PARTS); text with
    few values is a category, one-hot encoded; free text becomes hashed word counts weighted by TF-IDF; an
    identifier (every value distinct, named like one or a single word each) is dropped. All encodings are
    fitted inside the model's pipeline, on the training part only, and each is said in the run's notes."""
    if config["dataset"] != "csv":
        x, y = LOADERS[config["dataset"]](return_X_y=True)
        return x, y, Columns()
    path, target = config["csv_path"], config["target"]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or target not in rows[0]:
        raise SystemExit(f"{path}: no column {target!r} (the label column)")
    features = [name for name in rows[0] if name != target]
    if not features:
        raise SystemExit(f"{path}: no feature columns beside the label column {target!r}")
    columns: list[list] = []
    kinds = Columns()
    for name in features:
        cells = [(row[name] or "").strip() for row in rows]
        present = [c for c in cells if c.lower() not in MISSING]
        distinct = len(set(present))
        unique = len(present) >= 20 and distinct == len(present)
        dropped = f"column {name!r} dropped: an identifier (each of its values is distinct)"
        if unique and IDENTIFIER_NAME.search(name):
            kinds.notes.append(dropped)
            continue
        if all(_number(c) is not None for c in present):
            columns.append([_number(c) if c.lower() not in MISSING else math.nan for c in cells])
            continue
        if present and all(_date(c) is not None for c in present):
            columns.extend(date_parts(cells))
            kinds.notes.append(f"column {name!r} is a date: used as its {', '.join(DATE_PARTS)}")
            continue
        if unique and not any(ch.isspace() for c in present for ch in c):  # codes, UUIDs, e-mail addresses
            kinds.notes.append(dropped)
            continue
        kinds_list = kinds.categorical if distinct <= MAX_CATEGORIES else kinds.text
        kinds_list.append(len(columns))
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


def with_preparation(model, x: np.ndarray, columns: Columns):
    """`model` behind what a CSV's columns need: imputation of missing numbers, one-hot categories and
    hashed TF-IDF words of free text, every part fitted on the training data it is given."""
    prepared = set(columns.categorical) | set(columns.text)
    if not prepared and not np.isnan(np.asarray(x, dtype=float)).any():
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
    # Dense output: not every model takes a sparse matrix.
    prepare = compose.ColumnTransformer([s for s in steps if s[2] != []], sparse_threshold=0)
    return pipeline.make_pipeline(prepare, model)


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
    model = with_preparation(build_model(config["params"], seed), x, columns)
    model.fit(x_train, y_train)
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
    if len(y_test) <= 5000:
        result["test_targets"] = np.asarray(y_test).tolist()
        result["test_predictions"] = np.round(np.asarray(test_predicted, dtype=float), 6).tolist()
    Path("result.json").write_text(json.dumps(result))
    print(json.dumps(result["metrics"]))


if __name__ == "__main__":
    main()
