"""Network drafts: the classes a draft uses but never wrote, and the shape mistakes that have one right
answer.

A small model often writes `return DeepMLP(input_shape, n_outputs, width)` and stops, or gets the
in-features of its first linear layer wrong. The first is asked for in a second, smaller request (the
class alone, its constructor's arguments given, a block class passed to the template's CNN or UNet
included; `forward` alone for a class without one). The second has one right answer once a smoke run
shows the error (after_smoke_error): the lazy form of the layer, which takes its input size from the
first batch (the template runs one batch through before training), a flatten of each example before a
classifier's first linear layer, feature maps joined at one size, a segmentation output resized to the
masks', a classifier's per-pixel logits averaged, a block's input projected to its output's channels
before they are added. Before any run: 3-D layers on 2-D images, `params` passed to a class that reads
it, sums made in place in forward (autograd needs what they overwrite), dilated convolutions padded to
keep a segmentation map's size."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from airlab_coder.api_check import ApiReview, bound_names, dotted, param_read, template_namespace
from airlab_coder.api_index import load_index

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
# Volume layers: the template's batches are (N, C, H, W) images or (N, F) tables, never volumes.
VOLUME_TO_IMAGE = {
    f"{kind}3d": f"{kind}2d"
    for kind in ("Conv", "ConvTranspose", "BatchNorm", "MaxPool", "AvgPool", "Dropout", "LazyConv",
                 "LazyConvTranspose", "LazyBatchNorm", "InstanceNorm", "AdaptiveAvgPool", "AdaptiveMaxPool")
}  # fmt: skip
FLATTENING = frozenset(("Flatten", "flatten", "view", "reshape"))
# How the template's CNN and UNet build a block class passed as `block=`.
BLOCK_ARGUMENTS = ("channels_in", "channels_out")
# A 2-D convolution's arguments after its channels, in order.
CONV_ARGUMENTS = ("kernel_size", "stride", "padding", "dilation")


@dataclass(frozen=True)
class MissingClass:
    name: str
    # The constructor's arguments as the draft passes them, named after what they carry.
    arguments: tuple[str, ...]


def _argument_name(node: ast.expr, position: int) -> str:
    """`int(params.get("width", 64))` -> "width"; a plain name -> itself; otherwise argN."""
    if isinstance(node, ast.Name):
        return node.id
    reads = (param_read(inner) for inner in ast.walk(node) if isinstance(inner, ast.expr))
    read = next((name for name in reads if name), None)
    return read or f"arg{position}"


def missing_classes(code: str) -> list[MissingClass]:
    """Classes the draft calls (a capitalised name) but defines nowhere and no library or the template
    has."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    defined = bound_names(tree) | template_namespace("pytorch").defined
    index = load_index()
    found: dict[str, MissingClass] = {}

    def unknown(name: str) -> bool:
        return name[:1].isupper() and name not in defined | found.keys() and not index.homes(name, "torch")

    for node in ast.walk(tree):
        # `CNN(..., block=ResidualBlock)`: the template's networks build each block as block(in, out).
        if isinstance(node, ast.keyword) and node.arg == "block" and isinstance(node.value, ast.Name):
            if unknown(node.value.id):
                found[node.value.id] = MissingClass(node.value.id, BLOCK_ARGUMENTS)
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        if not unknown(name):
            continue
        arguments = [_argument_name(a, i) for i, a in enumerate(node.args)]
        arguments += [k.arg for k in node.keywords if k.arg]
        unique = [a if arguments.index(a) == i else f"{a}_{i}" for i, a in enumerate(arguments)]
        found[name] = MissingClass(name, tuple(unique))
    return list(found.values())


def _layer(node: ast.AST) -> str:
    """The torch.nn layer a call builds ("Linear"), or "" when it is not an nn.X(...) call."""
    if not isinstance(node, ast.Call):
        return ""
    parts = dotted(node.func)
    return parts[-1] if parts and parts[:-1] in (["nn"], ["torch", "nn"]) else ""


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


def _wrapped(code: str, wrapper: str, repair: str) -> ApiReview:
    """build_model's result wrapped in one of the template's modules (once)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    build = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_model"), None)
    if build is None:
        return ApiReview(code)
    wrapped = False
    for node in ast.walk(build):
        if isinstance(node, ast.Return) and node.value is not None and wrapper not in ast.unparse(node.value):
            node.value = ast.Call(ast.Name(wrapper, ast.Load()), [node.value], [])
            wrapped = True
    if not wrapped:
        return ApiReview(code)
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


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
        layer = _layer(node)
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


class _Volumes(ast.NodeTransformer):
    def __init__(self) -> None:
        self.changed: list[str] = []

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        layer = _layer(node)
        if layer in VOLUME_TO_IMAGE:
            assert isinstance(node.func, ast.Attribute)
            node.func.attr = VOLUME_TO_IMAGE[layer]
            self.changed.append(f"{layer} -> {VOLUME_TO_IMAGE[layer]}")
        return node


def image_layers(code: str, task: str = "") -> ApiReview:
    """3-D (volume) layers as their 2-D forms: the template's images are (channels, height, width)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    volumes = _Volumes()
    volumes.visit(tree)
    if not volumes.changed:
        return ApiReview(code)
    kinds = ", ".join(sorted(set(volumes.changed)))
    repair = f"volume layers on (channels, height, width) images: used the image ones ({kinds})"
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


def params_passed_in(code: str, task: str = "") -> ApiReview:
    """A class whose methods read `params` (build_model's argument, not in their scope) gets it as its
    constructor's last argument, and build_model passes it."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    needing = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        reads = any(
            isinstance(n, ast.Name) and n.id == "params" and isinstance(n.ctx, ast.Load)
            for n in ast.walk(node)
        )
        if init is None or not reads or any(a.arg == "params" for a in init.args.args):
            continue
        init.args.args.append(ast.arg("params"))
        if init.args.defaults:  # a parameter without a default cannot follow those with one
            init.args.defaults.append(ast.Constant(None))
        needing.append(node.name)
    if not needing:
        return ApiReview(code)
    for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
        named = isinstance(call.func, ast.Name) and call.func.id in needing
        if named and not any(k.arg == "params" for k in call.keywords):
            call.keywords.append(ast.keyword("params", ast.Name("params", ast.Load())))
    repair = f"{', '.join(needing)} read build_model's params: passed in as an argument"
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


def classes_without_forward(code: str) -> list[str]:
    """Network classes (subclasses of nn.Module) that define no forward method."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any((dotted(base) or [""])[-1] == "Module" for base in node.bases)
        and not any(isinstance(n, ast.FunctionDef) and n.name == "forward" for n in node.body)
    ]


def with_method(code: str, class_name: str, method: str) -> str:
    """The code with `method` (a def) added to the class; the code as it is when either cannot be read."""
    try:
        tree, added = ast.parse(code), ast.parse(method)
    except SyntaxError:
        return code
    functions = [n for n in ast.walk(added) if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not functions or not classes:
        return code
    classes[0].body.append(functions[0])
    return ast.unparse(ast.fix_missing_locations(tree))


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


ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_OPERATORS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class _OutOfPlace(ast.NodeTransformer):
    def __init__(self) -> None:
        self.changed: list[str] = []

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if not (isinstance(node.target, ast.Name) and isinstance(node.op, ARITHMETIC)):
            return node
        target = node.target.id
        self.changed.append(f"{target} {_OPERATORS[type(node.op)]}= ...")
        value = ast.BinOp(ast.Name(target, ast.Load()), node.op, node.value)
        return ast.copy_location(ast.Assign([ast.Name(target, ast.Store())], value), node)


def out_of_place(code: str, task: str = "") -> ApiReview:
    """`x += skip` in a network's forward as `x = x + skip`: added in place, it overwrites a tensor that
    autograd keeps for the backward pass (a ReLU's output), and training fails at the first step, while
    the sum is the same."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    rewrite = _OutOfPlace()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, ast.FunctionDef) and method.name == "forward":
                    rewrite.visit(method)
    if not rewrite.changed:
        return ApiReview(code)
    sums = ", ".join(sorted(set(rewrite.changed)))
    repair = f"in-place arithmetic in forward ({sums}) made out of place: autograd needs what it overwrote"
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


def _constant(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def dilated_padding(code: str, task: str) -> ApiReview:
    """A segmentation network's dilated 3x3 (or any odd) convolution padded as if it were not dilated
    shrinks every map by 2 x (dilation - 1) pixels, until a kernel outgrows the image: padded by its
    dilation x (kernel - 1) / 2, the size the per-pixel output needs."""
    if task != "segmentation":
        return ApiReview(code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ApiReview(code)
    changed = []
    for node in ast.walk(tree):
        layer = _layer(node)
        if layer not in ("Conv2d", "LazyConv2d") or not isinstance(node, ast.Call):
            continue
        # Conv2d(in, out, kernel_size, ...), LazyConv2d(out, kernel_size, ...)
        first = 2 if layer == "Conv2d" else 1
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        placed = dict(zip(CONV_ARGUMENTS, node.args[first:], strict=False))
        given = placed | keywords
        kernel, stride = _constant(given.get("kernel_size")), _constant(given.get("stride")) or 1
        padding, dilation = _constant(given.get("padding")) or 0, _constant(given.get("dilation"))
        if not all(isinstance(v, int) for v in (kernel, stride, padding, dilation)):
            continue
        assert isinstance(kernel, int) and isinstance(dilation, int)
        same = dilation * (kernel - 1) // 2
        if stride != 1 or dilation < 2 or kernel % 2 == 0 or padding == same:
            continue
        if "padding" in keywords:
            next(k for k in node.keywords if k.arg == "padding").value = ast.Constant(same)
        elif "padding" in placed:
            node.args[first + CONV_ARGUMENTS.index("padding")] = ast.Constant(same)
        else:
            node.keywords.append(ast.keyword("padding", ast.Constant(same)))
        changed.append(f"dilation {dilation}: padding {padding} -> {same}")
    if not changed:
        return ApiReview(code)
    repair = f"dilated convolutions padded to keep the image's size ({', '.join(sorted(set(changed)))})"
    return ApiReview(ast.unparse(ast.fix_missing_locations(tree)), [repair])


def block_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """The draft's classes it passes to the template's CNN or UNet as `block=` (built as block(in, out))."""
    passed = {
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "block" and isinstance(node.value, ast.Name)
    }
    return [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in passed]


def _method(node: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


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
        init, forward = _method(block, "__init__"), _method(block, "forward")
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
    return _wrapped(code, "Pooled", repair)


def output_resized(code: str) -> ApiReview:
    """A segmentation network whose logits are not the masks' size: build_model's result wrapped in the
    template's InputSized, which resizes them to the input's height and width."""
    repair = "the network's output was not the masks' size: resized to the input's (InputSized)"
    return _wrapped(code, "InputSized", repair)


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


def block_problems(code: str) -> list[str]:
    """What makes a `block=` given to the template's CNN or UNet unusable before any run: the network
    builds it as block(channels_in, channels_out), once per level, and calls it on one feature map."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    contract = (
        "the network builds it as {name}(channels_in, channels_out) for each level and calls it on one "
        "feature map: its __init__ must take (self, channels_in, channels_out) and its forward (self, x). "
        "Data augmentation is not a block: it goes in augment(inputs, targets, generator)"
    )
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "block" and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func)
            given = ast.unparse(node.value)
            told = f"block={given} passes one module built once: pass the class itself, block={called}; "
            problems.append(told + contract.format(name=called))
    for block in block_classes(tree):
        init, forward = _method(block, "__init__"), _method(block, "forward")
        takes = len(init.args.args) - 1 if init else 0
        required = takes - len(init.args.defaults) if init else 0
        inputs = len(forward.args.args) - 1 - len(forward.args.defaults) if forward else 1
        if init is None or takes < 2 or required > 2 or inputs != 1:
            problems.append(f"{block.name} is passed as block=: " + contract.format(name=block.name))
    return problems
