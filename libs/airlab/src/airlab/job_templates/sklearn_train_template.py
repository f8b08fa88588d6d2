"""airlab job template: fit a scikit-learn model on one of scikit-learn's bundled datasets.

Seeded, CPU-only, and following the experiment contract: metrics.jsonl (one line per cross-validation fold
on the training split), result.json with the held-out score, the fitted model in models/. Settings come
from CONFIG below, overridden by config.json in the work dir."""

import json
import pickle
import time
from pathlib import Path

import numpy as np
from sklearn import datasets, ensemble, linear_model, neighbors, neural_network, svm
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CONFIG = {
    "dataset": "digits",  # digits | breast_cancer | wine | diabetes
    "metric": "accuracy",  # accuracy | roc_auc | f1_macro | rmse | mae | r2
    "model": "logistic_regression",
    "params": {},  # keyword arguments of the model
    "seed": 0,
    "test_fraction": 0.25,
    "cv_folds": 3,
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
    "svm_classifier": lambda seed, **p: svm.SVC(probability=True, random_state=seed, **p),
    "knn_classifier": lambda seed, **p: neighbors.KNeighborsClassifier(**p),
    "knn_regressor": lambda seed, **p: neighbors.KNeighborsRegressor(**p),
}
CLASSIFICATION_METRICS = {"accuracy", "roc_auc", "f1_macro"}
SCORERS = {"accuracy": "accuracy", "roc_auc": "roc_auc_ovr", "f1_macro": "f1_macro",
           "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error", "r2": "r2"}  # fmt: skip


def settings() -> dict:
    config = dict(CONFIG)
    if Path("config.json").is_file():
        config.update(json.loads(Path("config.json").read_text()))
    return config


def score(metric: str, model, x, y) -> float:
    if metric == "accuracy":
        return float(accuracy_score(y, model.predict(x)))
    if metric == "f1_macro":
        return float(f1_score(y, model.predict(x), average="macro"))
    if metric == "roc_auc":
        probabilities = model.predict_proba(x)
        if probabilities.shape[1] == 2:
            return float(roc_auc_score(y, probabilities[:, 1]))
        return float(roc_auc_score(y, probabilities, multi_class="ovr"))
    predicted = model.predict(x)
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted - y) ** 2)))
    if metric == "mae":
        return float(mean_absolute_error(y, predicted))
    return float(r2_score(y, predicted))


def main() -> None:
    began = time.time()
    config = settings()
    seed = config["seed"]
    x, y = LOADERS[config["dataset"]](return_X_y=True)
    classification = config["metric"] in CLASSIFICATION_METRICS
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=config["test_fraction"], random_state=seed, stratify=y if classification else None
    )
    model = make_pipeline(StandardScaler(), MODELS[config["model"]](seed, **config["params"]))
    folds = (StratifiedKFold if classification else KFold)(
        config["cv_folds"], shuffle=True, random_state=seed
    )
    cv = cross_val_score(model, x_train, y_train, cv=folds, scoring=SCORERS[config["metric"]])
    with open("metrics.jsonl", "a") as handle:
        for fold, value in enumerate(cv):
            handle.write(json.dumps({"step": fold, f"cv_{config['metric']}": abs(float(value))}) + "\n")
    model.fit(x_train, y_train)
    held_out = score(config["metric"], model, x_test, y_test)
    Path("models").mkdir(exist_ok=True)
    Path("models/model.pkl").write_bytes(pickle.dumps(model))
    result = {
        "metrics": {config["metric"]: held_out, f"cv_{config['metric']}": float(np.mean(np.abs(cv)))},
        "seed": seed,
        "duration_seconds": time.time() - began,
        "config": config,
    }
    Path("result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["metrics"]))


if __name__ == "__main__":
    main()
