"""What the coder writes into each job template: the function it writes (arguments, what it returns, calls it
must not make), its prompts, how the template's registry builds a family, and the facts the PyTorch
prompt states (outputs per task, input shapes, which worked examples a model gets)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from airlab import domain
from airlab.v1 import loop_pb2

BEGIN, END = "# <airlab:model>", "# </airlab:model>"


MODULES = (
    "decomposition, ensemble, linear_model, naive_bayes, neighbors, neural_network, pipeline, preprocessing, "
    "svm, tree"
)


@dataclass(frozen=True)
class TemplateRules:
    """What the coder writes into one job template: the function's arguments, what it must not call, the
    prompts, and how the template's own registry builds a family (the registry path and the fallback)."""

    file: str
    args: tuple[str, ...]
    returns: str
    forbidden: frozenset[str]
    implement_prompt: str
    repair_prompt: str
    registry_function: str
    # Besides imports and build_model, what a draft may define (a network's classes, helpers).
    keeps_definitions: bool = False


SKLEARN = TemplateRules(
    file=domain.TEMPLATE_FILES["sklearn"],
    args=("params", "seed"),
    returns="the unfitted estimator",
    forbidden=frozenset(
        (
            "fit",
            "fit_transform",
            "fit_predict",
            "predict",
            "predict_proba",
            "score",
            "train_test_split",
            "cross_val_score",
            "open",
        )
    ),
    implement_prompt="coder/implement",
    repair_prompt="coder/repair",
    registry_function="""def build_model(params, seed):
    estimator = MODELS[{name!r}](seed)
    accepted = estimator.get_params()
    chosen = {{}}
    for key, value in params.items():
        if key in accepted:
            whole = isinstance(value, float) and value.is_integer() and not isinstance(accepted[key], float)
            chosen[key] = int(value) if whole else value
    return pipeline.make_pipeline(preprocessing.StandardScaler(), estimator.set_params(**chosen))""",
)


PYTORCH = TemplateRules(
    file=domain.TEMPLATE_FILES["pytorch"],
    args=("params", "input_shape", "n_outputs"),
    returns="the untrained network",
    forbidden=frozenset(
        (
            "backward",
            "step",
            "zero_grad",
            "load",
            "save",
            "load_state_dict",
            "open",
            "train_test_split",
            "fit",
        )
    ),
    implement_prompt="coder/implement_pytorch",
    repair_prompt="coder/repair_pytorch",
    registry_function="""def build_model(params, input_shape, n_outputs):
    return MODELS[{name!r}](input_shape, n_outputs, params)""",
    keeps_definitions=True,
)


RULES = {"sklearn": SKLEARN, "pytorch": PYTORCH}
# What a network's output must be, per task (the PyTorch prompt says it).
OUTPUTS = {
    "classification": "(batch, n_outputs) class logits",
    "regression": "(batch, 1) values",
    "segmentation": "(batch, n_outputs, height, width) class logits per pixel, the input's height and width",
}


class NetworkExamples(StrEnum):
    """The PyTorch prompt's worked examples for image tasks: a block class passed to the template's CNN or
    UNet, or a whole network class."""

    BLOCKS = "blocks"
    WHOLE = "whole"


# Models that write better networks from whole-class examples. bench-coder (idea set v1, one run each):
# with block examples the 0.5B model put a classifier head into a block, or a block into ideas that need
# none (PyTorch ideas within 3 attempts: 30%, against 60% with whole networks); the 1.5B model passed
# 80% with them. Any other model gets the block examples.
WHOLE_NETWORK_MODELS = frozenset(("qwen2.5-coder-0.5b-instruct",))


def network_examples_for(model: str) -> NetworkExamples:
    return NetworkExamples.WHOLE if model in WHOLE_NETWORK_MODELS else NetworkExamples.BLOCKS


# The input of the built-in image datasets (the PyTorch prompt says it, and how often it can be halved).
INPUT_SHAPES = {"digits": ((1, 8, 8), 2), "shapes": ((1, 32, 32), 3)}


def rules_for(job: loop_pb2.JobConfig) -> TemplateRules:
    return RULES[domain.template_of(job.template)]
