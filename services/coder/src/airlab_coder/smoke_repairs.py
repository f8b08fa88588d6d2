"""Repairs of a network draft after its smoke run failed, for errors with one right answer: a layer's
input size (the lazy form of the layer, which takes it from the first batch the template runs through
before training; a flatten of each example before a classifier's first linear layer; feature maps joined
at one size), a segmentation output resized to the masks', a classifier's per-pixel logits averaged, and
a block's input projected to its output's channels before they are added."""

from __future__ import annotations

import ast
import re

from airlab_coder.api_check import ApiReview
from airlab_coder.ast_names import dotted
from airlab_coder.network_parts import method_named
from airlab_coder.networks import block_classes, layer_name, wrapped

# Errors of a smoke run that a layer's wrong input size causes.
SHAPE_ERROR = re.compile(
    r"mat1 and mat2 shapes cannot be multiplied|expected input\[.*\] to have \d+ channels"
    r"|running_mean should contain|size mismatch|Expected .*input.*features"
    r"|only batches of spatial targets supported|Expected input batch_size"
    r"|Sizes of tensors must match except in dimension 1"
)


# A segmentation network's output whose height and width are not the masks'.
OUTPUT_SIZE_ERROR = re.compile(
    r"size mismatch \(got input: \[\d+, \d+, \d+, \d+\] ?, target: \[\d+, \d+, \d+\]"
)


# A sum of two feature maps whose channels differ (a residual block's input added to its output).
SUM_CHANNELS_ERROR = re.compile(
    r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton dimension 1"
)


# A classifier whose logits still have a height and width (a fully convolutional network, no pooling).
SPATIAL_LOGITS_ERROR = re.compile(r"only batches of spatial targets supported \(3D tensors\)")


# torch.nn layer -> its lazy form, which drops the first argument (the input size).
LAZY = {
    "Linear": "LazyLinear",
    "Conv1d": "LazyConv1d",
    "Conv2d": "LazyConv2d",
    "Conv3d": "LazyConv3d",
    "ConvTranspose1d": "LazyConvTranspose1d",
    "ConvTranspose2d": "LazyConvTranspose2d",
    "ConvTranspose3d": "LazyConvTranspose3d",
    "BatchNorm1d": "LazyBatchNorm1d",
    "BatchNorm2d": "LazyBatchNorm2d",
    "BatchNorm3d": "LazyBatchNorm3d",
}


INPUT_SIZE_KEYWORDS = frozenset(("in_features", "in_channels", "num_features"))


FLATTENING = frozenset(("Flatten", "flatten", "view", "reshape"))


def _called(tree: ast.AST) -> set[str]:
    """The last part of every name the code calls (`x.view(...)` -> "view")."""
    return {parts[-1] for n in ast.walk(tree) if isinstance(n, ast.Call) and (parts := dotted(n.func))}


def _flattens_the_batch(node: ast.Call) -> bool:
    """`x.view(-1, k)`, `x.reshape(-1, k)`, `torch.flatten(x)`, `x.flatten()`: meant to flatten each
    example, they fold the batch into the features when k is not the per-example size."""
    func = node.func
    if not isinstance(func, ast.Attribute):
        return False
    minus_one = node.args and isinstance(node.args[0], ast.UnaryOp) and ast.unparse(node.args[0]) == "-1"
    if func.attr in ("view", "reshape") and minus_one and len(node.args) == 2:
        return True
    if func.attr == "flatten" and not node.keywords:
        on_torch = isinstance(func.value, ast.Name) and func.value.id == "torch"
        return len(node.args) == (1 if on_torch else 0)
    return False


def _joins_channels(node: ast.Call) -> bool:
    """`torch.cat([a, b], dim=1)` (or `1` by position) over a literal list of feature maps."""
    parts = dotted(node.func)
    if parts not in (["torch", "cat"], ["torch", "concat"]) or not node.args:
        return False
    if not isinstance(node.args[0], ast.List | ast.Tuple):
        return False
    dim = (
        node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "dim"), None)
    )
    return isinstance(dim, ast.Constant) and dim.value == 1


class _Lazy(ast.NodeTransformer):
    def __init__(self, flatten_first_linear: bool, per_example: bool) -> None:
        self.changed: list[str] = []
        self.flatten_first_linear = flatten_first_linear
        self.per_example = per_example

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _joins_channels(node):
            # Feature maps joined along the channels must have one height and width: resized to the first's.
            assert node.args and isinstance(node.args[0], ast.List | ast.Tuple)
            self.changed.append("feature maps joined at one size (same_size)")
            node.args[0] = ast.Call(ast.Name("same_size", ast.Load()), [node.args[0]], [])
            return node
        if self.per_example and _flattens_the_batch(node):
            assert isinstance(node.func, ast.Attribute)
            target = node.args[0] if ast.unparse(node.func.value) == "torch" else node.func.value
            self.changed.append(f"{ast.unparse(node)} -> flatten each example")
            return ast.parse(f"torch.flatten({ast.unparse(target)}, 1)", mode="eval").body
        layer = layer_name(node)
        if layer not in LAZY:
            return node
        lazy = LAZY[layer]
        assert isinstance(node.func, ast.Attribute)
        node.func.attr = lazy
        if node.args and not any(k.arg in INPUT_SIZE_KEYWORDS for k in node.keywords):
            node.args = node.args[1:]
        node.keywords = [k for k in node.keywords if k.arg not in INPUT_SIZE_KEYWORDS]
        self.changed.append(f"{layer} -> {lazy}")
        if layer == "Linear" and self.flatten_first_linear:
            # Convolutions give (N, C, H, W); a linear layer on that works on W alone. Flattening first
            # is what a classifier head needs (and changes nothing on an input that is already flat).
            self.flatten_first_linear = False
            self.changed.append("Flatten before the first linear layer")
            return ast.parse(f"nn.Sequential(nn.Flatten(), {ast.unparse(node)})", mode="eval").body
        return node


def lazy_layers(code: str, task: str) -> ApiReview:
    """Every nn.Linear/ConvNd/BatchNormNd in its lazy form (input sizes taken from the first batch); for
    a classifier with convolutions and nothing that flattens, a flatten before the first linear layer."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    called = _called(tree)
    # A classifier's first linear layer needs each example flat; on a table it already is (Flatten of a
    # flat batch changes nothing).
    classifier_head = task == "classification" and not called & FLATTENING
    lazy = _Lazy(classifier_head, per_example=task in ("classification", "regression"))
    lazy.visit(tree)
    if not lazy.changed:
        return ApiReview(code)
    kinds = sorted(set(lazy.changed))
    repair = f"a shape error in the smoke run: input sizes left to PyTorch ({', '.join(kinds)})"
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


class _Shortcut(ast.NodeTransformer):
    """In one statement: each sum with the block's input (or a name that still holds it) adds the input's
    projection instead."""

    def __init__(self, inputs: set[str]) -> None:
        self.inputs = inputs
        self.changed = False

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Add):
            for side in ("left", "right"):
                operand = getattr(node, side)
                if isinstance(operand, ast.Name) and operand.id in self.inputs:
                    setattr(node, side, ast.parse(f"self.shortcut({operand.id})", mode="eval").body)
                    self.changed = True
        return node


def shortcut_projected(code: str) -> ApiReview:
    """A block that adds its input to its output when the two have different channels: the input goes
    through a 1x1 convolution to the output's channels first (a projection shortcut, as in ResNet), and
    stays as it is where they match."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    repaired = []
    for block in block_classes(tree):
        init, forward = method_named(block, "__init__"), method_named(block, "forward")
        if init is None or forward is None or len(init.args.args) < 3 or len(forward.args.args) < 2:
            continue
        if any(n.attr == "shortcut" for n in ast.walk(block) if isinstance(n, ast.Attribute)):
            continue
        channels_in, channels_out = init.args.args[1].arg, init.args.args[2].arg
        inputs = {forward.args.args[1].arg}
        shortcut = _Shortcut(inputs)
        for statement in forward.body:
            shortcut.visit(statement)
            # Follow the input through plain copies (`residual = x`); a name given anything else is not it.
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        copies = isinstance(statement.value, ast.Name) and statement.value.id in inputs
                        (inputs.add if copies else inputs.discard)(target.id)
        if not shortcut.changed:
            continue
        init.body.append(
            ast.parse(
                f"self.shortcut = nn.Conv2d({channels_in}, {channels_out}, 1) "
                f"if {channels_in} != {channels_out} else nn.Identity()"
            ).body[0]
        )
        repaired.append(block.name)
    if not repaired:
        return ApiReview(code)
    repair = (
        f"{', '.join(repaired)} added its input to an output of other channels: the input projected by a "
        "1x1 convolution first (a projection shortcut)"
    )
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


def pooled_output(code: str) -> ApiReview:
    """A classifier whose logits keep a height and width: build_model's result wrapped in the template's
    Pooled, which averages them over both (global average pooling)."""
    repair = "the classifier's logits had a height and width: averaged over them (Pooled)"
    return wrapped(code, "Pooled", repair)


def output_resized(code: str) -> ApiReview:
    """A segmentation network whose logits are not the masks' size: build_model's result wrapped in the
    template's InputSized, which resizes them to the input's height and width."""
    repair = "the network's output was not the masks' size: resized to the input's (InputSized)"
    return wrapped(code, "InputSized", repair)


def after_smoke_error(code: str, task: str, error: str) -> ApiReview:
    """The repair with one right answer for a network's smoke-run error, if there is one (no repairs
    otherwise)."""
    if OUTPUT_SIZE_ERROR.search(error):
        return output_resized(code)
    if task == "classification" and SPATIAL_LOGITS_ERROR.search(error):
        return pooled_output(code)
    if SUM_CHANNELS_ERROR.search(error):
        return shortcut_projected(code)
    if SHAPE_ERROR.search(error):
        return lazy_layers(code, task)
    return ApiReview(code)
