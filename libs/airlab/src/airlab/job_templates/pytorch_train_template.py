"""airlab job template: train a PyTorch MLP on one of scikit-learn's bundled datasets.

Seeded (the same seed gives the same result), CPU/GPU-agnostic (uses a GPU when one is visible), and
follows the experiment contract: one line per epoch in metrics.jsonl, result.json at the end, the trained
weights in models/. Settings come from CONFIG below, overridden by config.json in the work dir."""

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

CONFIG = {
    "dataset": "digits",  # digits | breast_cancer | wine | diabetes
    "seed": 0,
    "test_fraction": 0.25,
    "epochs": 30,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "hidden": [128],
    "dropout": 0.1,
    "max_train_samples": 0,  # > 0: train on a subset (the coder's smoke runs)
}
LOADERS = {
    "digits": (datasets.load_digits, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}


def settings() -> dict:
    config = dict(CONFIG)
    if Path("config.json").is_file():
        config.update(json.loads(Path("config.json").read_text()))
    return config


def seed_everything(seed: int) -> None:
    # As many threads as the runner gave this job cores (JOB_CPU_THREADS), not one per core of the host.
    threads = int(os.environ.get("JOB_CPU_THREADS") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load(config: dict):
    loader, task = LOADERS[config["dataset"]]
    x, y = loader(return_X_y=True)
    stratify = y if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=config["test_fraction"], random_state=config["seed"], stratify=stratify
    )
    if config["max_train_samples"]:
        x_train, y_train = x_train[: config["max_train_samples"]], y_train[: config["max_train_samples"]]
    scaler = StandardScaler().fit(x_train)
    return task, scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def build_model(n_inputs: int, n_outputs: int, config: dict) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in config["hidden"]:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config["dropout"])]
        width = hidden
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def log_metrics(step: int, **values: float) -> None:
    with open("metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": step, **values}) + "\n")


def main() -> None:
    began = time.time()
    config = settings()
    seed_everything(config["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task, x_train, x_test, y_train, y_test = load(config)
    classes = int(max(y_train.max(), y_test.max()) + 1) if task == "classification" else 1
    model = build_model(x_train.shape[1], classes, config).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"]
    )
    loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    as_target = (lambda t: t.long()) if task == "classification" else (lambda t: t.float().unsqueeze(1))
    x_train_t = torch.tensor(x_train, dtype=torch.float32, device=device)
    y_train_t = as_target(torch.tensor(y_train, device=device))
    generator = torch.Generator().manual_seed(config["seed"])

    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(x_train_t), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(order), config["batch_size"]):
            batch = order[start : start + config["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train_t[batch]), y_train_t[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        log_metrics(epoch, train_loss=total / len(order))

    model.eval()
    with torch.no_grad():
        output = model(torch.tensor(x_test, dtype=torch.float32, device=device)).cpu()
    if task == "classification":
        predicted = output.argmax(dim=1).numpy()
        metrics = {"accuracy": float((predicted == y_test).mean())}
        if classes == 2:
            metrics["roc_auc"] = float(roc_auc_score(y_test, torch.softmax(output, dim=1)[:, 1].numpy()))
    else:
        metrics = {"rmse": float(np.sqrt(((output.squeeze(1).numpy() - y_test) ** 2).mean()))}
    os.makedirs("models", exist_ok=True)
    torch.save(model.state_dict(), "models/model.pt")
    result = {
        "metrics": metrics,
        "seed": config["seed"],
        "duration_seconds": time.time() - began,
        "config": config,
    }
    Path("result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
