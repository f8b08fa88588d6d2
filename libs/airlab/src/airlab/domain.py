"""The lab's domain facts, each in one place: the metrics it measures (name, task, direction, how
scikit-learn computes it), the model families it knows (the planner's baselines and the job template's
registry names), and how idea titles are compared. Planner, coder, template settings and reviewer read
them from here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from airlab.v1 import idea_pb2, research_pb2

# Hyperparameters that count or size something: whole numbers even when a model forgets to say so (searched
# as floats they reach an estimator as 118.42 trees, or a layer as 8.0 channels).
WHOLE_NUMBER_NAMES = re.compile(
    r"^n_|_n$|estimators|depth|neighbo|iter|leaf|leaves|degree|layers|units|samples_split|samples_leaf|"
    r"components|bins|epochs|batch|k$|^k_|channels|width|filters|hidden|heads"
)


def counts_something(name: str) -> bool:
    """Whether a hyperparameter's name says it is a count or a size (a whole number)."""
    return WHOLE_NUMBER_NAMES.search(name.lower()) is not None


Task = Literal["classification", "regression", "segmentation"]
# The job templates a research's code is written from: scikit-learn estimators, or PyTorch networks.
Template = Literal["sklearn", "pytorch"]
TEMPLATES: tuple[Template, ...] = ("sklearn", "pytorch")
TEMPLATE_FILES: dict[Template, str] = {
    "sklearn": "sklearn_train_template.py",
    "pytorch": "pytorch_train_template.py",
}


def template_of(name: str) -> Template:
    """A plan's or job config's template name as a Template: empty (records of older versions) is sklearn;
    "sklearn_train" and "pytorch_train" (the coder API's names) are accepted. ValueError otherwise."""
    named = name.removesuffix("_train") or "sklearn"
    for known in TEMPLATES:
        if named == known:
            return known
    raise ValueError(f"unknown job template {name!r}; known: {', '.join(TEMPLATES)}")


MAXIMIZE = research_pb2.METRIC_DIRECTION_MAXIMIZE
MINIMIZE = research_pb2.METRIC_DIRECTION_MINIMIZE


@dataclass(frozen=True)
class MetricSpec:
    name: str
    tasks: tuple[Task, ...]
    direction: research_pb2.MetricDirection
    aliases: tuple[str, ...]

    @property
    def maximize(self) -> bool:
        return self.direction == MAXIMIZE


@dataclass(frozen=True)
class Param:
    """One searchable hyperparameter: its range, on a log scale or not, whole or not."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class ModelFamily:
    """A family of models: the planner's name for it, and the job template's registry entry per task."""

    name: str
    aliases: tuple[str, ...]
    template_models: tuple[tuple[Task, str], ...]
    # How an idea's text names the family (the coder's registry fallback).
    idea_pattern: str = ""
    # The family's hyperparameters worth searching, as a portfolio idea searches them.
    space: tuple[Param, ...] = ()
    # The job template whose registry builds it.
    template: Template = "sklearn"

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(task for task, _ in self.template_models)

    def search_space(self) -> dict[str, idea_pb2.Range]:
        """The family's hyperparameters as an idea's search space (what the portfolio searches)."""
        return {
            p.name: idea_pb2.Range(low=p.low, high=p.high, log_scale=p.log, integer=p.integer)
            for p in self.space
        }

    def template_model(self, task: str) -> str:
        for known, model in self.template_models:
            if known == task:
                return model
        raise KeyError(f"model family {self.name!r} has no {task} model")


METRICS = {
    m.name: m
    for m in (
        MetricSpec("accuracy", ("classification",), MAXIMIZE, ("accuracy", "acc")),
        MetricSpec("roc_auc", ("classification",), MAXIMIZE, ("roc auc", "roc_auc", "auroc", "auc")),
        MetricSpec("f1_macro", ("classification",), MAXIMIZE, ("f1", "f1 score", "macro f1")),
        MetricSpec("rmse", ("regression",), MINIMIZE, ("rmse", "root mean squared error")),
        MetricSpec("mae", ("regression",), MINIMIZE, ("mae", "mean absolute error")),
        MetricSpec("r2", ("regression",), MAXIMIZE, ("r2", "r squared", "coefficient of determination")),
        # Per image, averaged over the foreground classes; the mean over test images.
        MetricSpec("dice", ("segmentation",), MAXIMIZE, ("dice", "dice score", "f1 per pixel")),
        MetricSpec("iou", ("segmentation",), MAXIMIZE, ("iou", "jaccard", "intersection over union")),
    )
}

MODEL_FAMILIES = {
    f.name: f
    for f in (
        ModelFamily(
            name="logistic_regression",
            aliases=("logistic regression", "logreg", "logistic"),
            template_models=(("classification", "logistic_regression"),),
            idea_pattern=r"logistic",
        ),
        ModelFamily(
            name="linear_regression",
            aliases=("linear regression", "ols"),
            template_models=(("regression", "linear_regression"),),
            idea_pattern=r"linear regression|\bols\b",
        ),
        ModelFamily(
            name="ridge",
            aliases=("ridge", "ridge regression"),
            template_models=(("regression", "ridge"),),
            idea_pattern=r"\bridge\b",
        ),
        ModelFamily(
            name="mlp",
            aliases=("mlp", "multilayer perceptron", "neural network"),
            template_models=(("classification", "mlp_classifier"), ("regression", "mlp_regressor")),
            idea_pattern=r"\bmlp\b|neural net|perceptron|hidden (layer|unit)",
            space=(Param("alpha", 1e-6, 1e-1, log=True), Param("learning_rate_init", 1e-4, 3e-2, log=True)),
        ),
        ModelFamily(
            name="random_forest",
            aliases=("random forest",),
            template_models=(
                ("classification", "random_forest_classifier"),
                ("regression", "random_forest_regressor"),
            ),
            idea_pattern=r"random forest",
            space=(
                Param("n_estimators", 50, 400, log=True, integer=True),
                Param("min_samples_leaf", 1, 20, log=True, integer=True),
                Param("max_features", 0.1, 1.0),
            ),
        ),
        ModelFamily(
            name="gradient_boosting",
            aliases=("gradient boosting", "gbm"),
            template_models=(
                ("classification", "gradient_boosting_classifier"),
                ("regression", "gradient_boosting_regressor"),
            ),
            idea_pattern=r"(?<!hist )gradient[- ]boost|\bgbm\b|boosted trees",
        ),
        ModelFamily(
            name="hist_gradient_boosting",
            aliases=("hist gradient boosting", "histgradientboosting", "histogram gradient boosting"),
            template_models=(
                ("classification", "hist_gradient_boosting_classifier"),
                ("regression", "hist_gradient_boosting_regressor"),
            ),
            idea_pattern=r"hist(ogram)?[- ]?gradient[- ]?boost|lightgbm|xgboost",
            space=(
                Param("learning_rate", 0.01, 0.3, log=True),
                Param("max_iter", 50, 500, log=True, integer=True),
                Param("max_leaf_nodes", 8, 64, log=True, integer=True),
                Param("l2_regularization", 1e-4, 10.0, log=True),
            ),
        ),
        ModelFamily(
            name="svm",
            aliases=("svm", "svc", "support vector machine"),
            template_models=(("classification", "svm_classifier"), ("regression", "svm_regressor")),
            idea_pattern=r"\bsvm\b|\bsvc\b|\bsvr\b|support vector",
            space=(Param("C", 0.01, 1000.0, log=True), Param("gamma", 1e-4, 1.0, log=True)),
        ),
        ModelFamily(
            name="knn",
            aliases=("knn", "k nearest neighbors", "nearest neighbors"),
            template_models=(("classification", "knn_classifier"), ("regression", "knn_regressor")),
            idea_pattern=r"nearest neighbo|\bk-?nn\b",
            space=(Param("n_neighbors", 1, 50, log=True, integer=True),),
        ),
        # PyTorch networks (the pytorch template's registry). Epochs and the learning rate are searched with
        # the architecture: epochs are the fidelity that buys most on these goals.
        ModelFamily(
            name="torch_mlp",
            aliases=("mlp", "multilayer perceptron", "fully connected network", "neural network"),
            template_models=(("classification", "mlp"), ("regression", "mlp")),
            idea_pattern=r"\bmlp\b|perceptron|fully[- ]connected|dense (net|layers)",
            space=(
                Param("width", 32, 512, log=True, integer=True),
                Param("dropout", 0.0, 0.5),
                Param("learning_rate", 3e-4, 1e-2, log=True),
                Param("epochs", 5, 40, log=True, integer=True),
            ),
            template="pytorch",
        ),
        ModelFamily(
            name="cnn",
            aliases=("cnn", "convolutional network", "convolutional neural network", "convnet"),
            template_models=(("classification", "cnn"),),
            idea_pattern=r"\bcnn\b|convolution|convnet|resnet|\bconv\b",
            space=(
                Param("channels", 8, 64, log=True, integer=True),
                Param("dropout", 0.0, 0.5),
                Param("learning_rate", 3e-4, 1e-2, log=True),
                Param("epochs", 5, 30, log=True, integer=True),
            ),
            template="pytorch",
        ),
        ModelFamily(
            name="unet",
            aliases=("u-net", "unet", "u net"),
            template_models=(("segmentation", "unet"),),
            idea_pattern=r"\bu-? ?net\b",
            space=(
                Param("width", 8, 32, log=True, integer=True),
                Param("learning_rate", 5e-4, 2e-2, log=True),
                Param("epochs", 6, 30, log=True, integer=True),
            ),
            template="pytorch",
        ),
        ModelFamily(
            name="fcn",
            aliases=("fully convolutional network", "fcn", "dilated convolutions"),
            template_models=(("segmentation", "fcn"),),
            idea_pattern=r"\bfcn\b|fully convolutional|dilated",
            space=(
                Param("width", 8, 48, log=True, integer=True),
                Param("depth", 2, 6, integer=True),
                Param("learning_rate", 5e-4, 2e-2, log=True),
                Param("epochs", 6, 30, log=True, integer=True),
            ),
            template="pytorch",
        ),
    )
}
# The order an idea's text is matched in: the families an idea moves to before the linear baselines it
# moves away from ("replace the logistic regression with a random forest" names a random forest).
IDEA_MATCH_ORDER = (
    "random_forest",
    "hist_gradient_boosting",
    "gradient_boosting",
    "svm",
    "knn",
    "mlp",
    "logistic_regression",
    "ridge",
    "unet",
    "fcn",
    "cnn",
    "torch_mlp",
)
# The families a research tries first, in this order, whatever the LLM proposes: strong defaults for the
# template's kind of data, each searched with TPE. They are the lab's floor: it does not depend on the
# LLM's ideas. The baseline's own family is in it when it has a space (a tuned U-Net is a fair first try).
PORTFOLIO: dict[str, tuple[str, ...]] = {
    "sklearn": ("hist_gradient_boosting", "random_forest", "svm", "mlp", "knn"),
    "pytorch": ("cnn", "unet", "fcn", "torch_mlp"),
}


def family_in(text: str, task: str, template: str = "sklearn") -> ModelFamily | None:
    """The first family of `template` whose pattern the text matches and that has a model for `task`."""
    lowered = text.lower()
    for name in IDEA_MATCH_ORDER:
        family = MODEL_FAMILIES[name]
        if family.template == template and task in family.tasks and re.search(family.idea_pattern, lowered):
            return family
    return None


def template_models(template: str = "sklearn") -> set[str]:
    """Every registry entry the job template must have."""
    return {
        model
        for family in MODEL_FAMILIES.values()
        if family.template == template
        for _, model in family.template_models
    }


def maximize(metric: str) -> bool:
    """Whether `metric` is better higher. KeyError for a metric the lab does not know."""
    return METRICS[metric].maximize


def title_key(title: str) -> str:
    """What two idea titles are compared by: lowercase words, punctuation and spacing ignored."""
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


# Host paths no dataset comes from, whatever their permissions say: the manager refuses them by name at
# StartResearch, the runner again on the resolved path when the job starts.
SYSTEM_PATH_PREFIXES = ("/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/root", "/var/lib", "/var/run")
MAX_PATH_CHARS = 4096


def is_system_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in SYSTEM_PATH_PREFIXES)


# Characters no text a person types needs: C0 controls but tab and newline, DEL, C1 controls (U+009B is a
# terminal's CSI), and the bidirectional overrides and isolates that make text read other than it is.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hidden_characters(text: str) -> list[str]:
    """The control and bidirectional-override characters in `text`, as code points ('U+202E')."""
    return sorted({f"U+{ord(c):04X}" for c in _HIDDEN.findall(text)})
