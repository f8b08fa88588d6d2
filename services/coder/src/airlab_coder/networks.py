"""Network drafts checked and repaired before any run, for mistakes with one right answer: 3-D layers on
2-D images, `params` passed to a class that reads it, sums made in place in forward (autograd needs what
they overwrite), dilated convolutions padded to keep a segmentation map's size, and a block class that
cannot be one. What a smoke run's error calls for is `smoke_repairs`; a class or forward() the draft
never wrote is `network_parts`."""

from __future__ import annotations

import ast

from airlab_coder.api_check import ApiReview
from airlab_coder.ast_names import dotted
from airlab_coder.network_parts import method_named

# Volume layers: the template's batches are (N, C, H, W) images or (N, F) tables, never volumes.
VOLUME_TO_IMAGE = {
    f"{kind}3d": f"{kind}2d"
    for kind in ("Conv", "ConvTranspose", "BatchNorm", "MaxPool", "AvgPool", "Dropout", "LazyConv",
                 "LazyConvTranspose", "LazyBatchNorm", "InstanceNorm", "AdaptiveAvgPool", "AdaptiveMaxPool")
}  # fmt: skip
# A 2-D convolution's arguments after its channels, in order.
CONV_ARGUMENTS = ("kernel_size", "stride", "padding", "dilation")


def layer_name(node: ast.AST) -> str:
    """The torch.nn layer a call builds ("Linear"), or "" when it is not an nn.X(...) call."""
    if not isinstance(node, ast.Call):
        return ""
    parts = dotted(node.func)
    return parts[-1] if parts and parts[:-1] in (["nn"], ["torch", "nn"]) else ""


def wrapped(code: str, wrapper: str, repair: str) -> ApiReview:
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


class _Volumes(ast.NodeTransformer):
    def __init__(self) -> None:
        self.changed: list[str] = []

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        layer = layer_name(node)
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
        layer = layer_name(node)
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
        init, forward = method_named(block, "__init__"), method_named(block, "forward")
        takes = len(init.args.args) - 1 if init else 0
        required = takes - len(init.args.defaults) if init else 0
        inputs = len(forward.args.args) - 1 - len(forward.args.defaults) if forward else 1
        if init is None or takes < 2 or required > 2 or inputs != 1:
            problems.append(f"{block.name} is passed as block=: " + contract.format(name=block.name))
    return problems
