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
import json
import math
import os
import pickle
import time
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
# A text column with more distinct values than this is free text, not a category.
MAX_CATEGORIES = 100


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def as_float(values):
    """Numeric columns of a CSV travel as objects (so they sit beside text ones): make them floats."""
    return np.asarray(values, dtype=float)


def load(config: dict) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Features, labels and the indices of the categorical feature columns (empty for built-in data). A
    CSV's missing cells (empty, NA, ?, ...) become NaN; text columns are categories, encoded inside the
    model's pipeline, fitted on the training part only."""
    if config["dataset"] != "csv":
        x, y = LOADERS[config["dataset"]](return_X_y=True)
        return x, y, []
    path, target = config["csv_path"], config["target"]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or target not in rows[0]:
        raise SystemExit(f"{path}: no column {target!r} (the label column)")
    features = [name for name in rows[0] if name != target]
    if not features:
        raise SystemExit(f"{path}: no feature columns beside the label column {target!r}")
    columns, categorical = [], []
    for index, name in enumerate(features):
        cells = [(row[name] or "").strip() for row in rows]
        present = [c for c in cells if c.lower() not in MISSING]
        if all(_number(c) is not None for c in present):
            columns.append([_number(c) if c.lower() not in MISSING else math.nan for c in cells])
            continue
        distinct = len(set(present))
        if distinct > MAX_CATEGORIES:
            raise SystemExit(
                f"{path}: column {name!r} looks like free text ({distinct} distinct values, more than "
                f"{MAX_CATEGORIES}): drop it or encode it before the research"
            )
        categorical.append(index)
        columns.append([c if c.lower() not in MISSING else math.nan for c in cells])
    x = np.array(columns, dtype=object).T if categorical else np.array(columns, dtype=float).T
    labels = [(row[target] or "").strip() for row in rows]
    if any(label.lower() in MISSING for label in labels):
        raise SystemExit(f"{path}: the label column {target!r} has missing values: drop those rows first")
    if config["task"] == "classification":
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise SystemExit(f"{path}: the label column {target!r} has one class only: nothing to classify")
        return x, np.array([classes.index(label) for label in labels]), categorical
    numbers = [_number(label) for label in labels]
    if any(n is None for n in numbers):
        raise SystemExit(f"{path}: the label column {target!r} is not numeric, but the task is regression")
    return x, np.array(numbers, dtype=float), categorical


def with_preparation(model, x: np.ndarray, categorical: list[int]):
    """`model` behind the imputation and one-hot encoding a CSV with missing cells or text needs."""
    if not categorical and not np.isnan(np.asarray(x, dtype=float)).any():
        return model
    numeric = [i for i in range(x.shape[1]) if i not in categorical]
    steps = [
        ("numbers", pipeline.make_pipeline(
            preprocessing.FunctionTransformer(as_float), impute.SimpleImputer(strategy="median")
        ), numeric),
        ("categories", pipeline.make_pipeline(
            impute.SimpleImputer(strategy="constant", fill_value="(missing)"),
            preprocessing.OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        ), categorical),
    ]  # fmt: skip
    prepare = compose.ColumnTransformer([s for s in steps if s[2]])
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
    x, y, categorical = load(config)
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
                partial = with_preparation(build_model(config["params"], seed), x, categorical)
                partial.fit(x_train[:count], y_train[:count])
                value = score(metric, y_val, predictions(metric, partial, x_val))
                handle.write(
                    json.dumps({"step": step, "train_samples": count, f"val_{metric}": value}) + "\n"
                )
    model = with_preparation(build_model(config["params"], seed), x, categorical)
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
    }
    if len(y_test) <= 5000:
        result["test_targets"] = np.asarray(y_test).tolist()
        result["test_predictions"] = np.round(np.asarray(test_predicted, dtype=float), 6).tolist()
    Path("result.json").write_text(json.dumps(result))
    print(json.dumps(result["metrics"]))


if __name__ == "__main__":
    main()
