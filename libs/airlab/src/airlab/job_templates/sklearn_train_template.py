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
    datasets,
    decomposition,
    ensemble,
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
    "dataset": "digits",  # digits | breast_cancer | wine | diabetes | csv
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
LOADERS = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "diabetes": datasets.load_diabetes,
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


def load(config: dict) -> tuple[np.ndarray, np.ndarray]:
    if config["dataset"] != "csv":
        return LOADERS[config["dataset"]](return_X_y=True)
    with open(config["csv_path"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or config["target"] not in rows[0]:
        raise SystemExit(f"{config['csv_path']}: no column {config['target']!r}")
    features = [name for name in rows[0] if name != config["target"]]
    x = np.array([[float(row[name]) for name in features] for row in rows])
    labels = [row[config["target"]] for row in rows]
    if config["task"] == "classification":
        classes = sorted(set(labels))
        return x, np.array([classes.index(label) for label in labels])
    return x, np.array([float(label) for label in labels])


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
    x, y = load(config)
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
                partial = build_model(config["params"], seed).fit(x_train[:count], y_train[:count])
                value = score(metric, y_val, predictions(metric, partial, x_val))
                handle.write(
                    json.dumps({"step": step, "train_samples": count, f"val_{metric}": value}) + "\n"
                )
    model = build_model(config["params"], seed)
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
