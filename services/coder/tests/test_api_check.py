"""The coder's static checks of a draft's calls against the libraries (api_check), its repairs of network
drafts (networks), and the shipped API index, against the installed scikit-learn and PyTorch. The drafts
are ones the local 0.5B model wrote in `make bench-coder`."""

import json
from pathlib import Path

import pytest

from airlab_coder.api_check import review_calls
from airlab_coder.api_index import INDEX_FILE, build_index, dump
from airlab_coder.checking import smoke_summary
from airlab_coder.network_parts import missing_classes
from airlab_coder.networks import image_layers
from airlab_coder.smoke_repairs import lazy_layers

ROOT = Path(__file__).resolve().parents[3]


def sklearn_draft(body: str) -> str:
    return f"def build_model(params, seed):\n    return {body}\n"


def test_the_shipped_api_index_is_what_the_installed_libraries_say():
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    assert INDEX_FILE.read_text() == dump(build_index()), "stale: run `make api-index`"
    versions = json.loads(INDEX_FILE.read_text())["versions"]
    pins = {
        line.split("==")[0]: line.split("==")[1].split()[0]
        for name in ("requirements-sklearn.txt", "requirements-experiment.txt")
        for line in (ROOT / name).read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert versions["sklearn"] == pins["scikit-learn"]
    assert versions["torch"].split("+")[0] == pins["torch"]


@pytest.mark.parametrize(
    ("draft", "task", "repaired", "says"),
    [
        # A class under the wrong module: moved to where it lives (and imported when the template has not).
        (
            "pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.KernelRidge(alpha=1.0))",
            "regression",
            "kernel_ridge.KernelRidge(alpha=1.0)",
            "KernelRidge is in sklearn.kernel_ridge",
        ),
        # Misspelt: the one close name of the module.
        (
            "ensemble.HistogramGradientBoostingRegressor(max_iter=int(params['max_iter']))",
            "regression",
            "ensemble.HistGradientBoostingRegressor(",
            "(spelling)",
        ),
        # A module name never imported.
        (
            "logistic_regression.LogisticRegression(random_state=seed)",
            "classification",
            "linear_model.LogisticRegression(random_state=seed)",
            "is not defined",
        ),
        # A near miss of a keyword given one number.
        (
            "pipeline.make_pipeline(preprocessing.PolynomialFeatures(n_degree=2), linear_model.Ridge())",
            "regression",
            "preprocessing.PolynomialFeatures(degree=2)",
            "takes no `n_degree`: used `degree` (spelling)",
        ),
        # random_state where the estimator takes none.
        (
            "neighbors.KNeighborsClassifier(n_neighbors=int(params['n_neighbors']), random_state=seed)",
            "classification",
            "neighbors.KNeighborsClassifier(n_neighbors=int(params['n_neighbors']))",
            "takes no random_state",
        ),
        # A class that exists nowhere, but exactly one classifier of that module takes its arguments.
        (
            "svm.RBFClassifier(C=float(params['C']), gamma=float(params['gamma']))",
            "classification",
            "svm.SVC(C=",
            "the only classifier in sklearn.svm that takes C, gamma",
        ),
        # An abbreviation of the one regressor whose name starts with it.
        (
            "linear_model.MLP(alpha=float(params['alpha']))",
            "regression",
            "neural_network.MLPRegressor(alpha=",
            "the only regressor whose name starts with MLP and that takes alpha",
        ),
        # Soft voting needs probabilities; the ensemble's members need names.
        (
            "ensemble.VotingClassifier(estimators=[svm.SVC(), tree.DecisionTreeClassifier()], voting='soft')",
            "classification",
            "('svc', svm.SVC(probability=True)), ('decisiontreeclassifier', tree.DecisionTreeClassifier())",
            "each estimator named",
        ),
    ],
)
def test_mistakes_with_one_right_answer_are_repaired(draft, task, repaired, says):
    review = review_calls(sklearn_draft(draft), "sklearn", task=task)
    assert review.problems == []
    assert repaired in review.code.replace('"', "'")
    assert any(says in r for r in review.repairs), review.repairs
    compile(review.code, "draft", "exec")


@pytest.mark.parametrize(
    ("draft", "task", "says"),
    [
        (
            "linear_model.LinearRegression(alpha=float(params['alpha']))",
            "regression",
            "takes no keyword `alpha`; it takes: fit_intercept",
        ),
        ("linear_model.PolynomialRidge(alpha=1.0)", "regression", "Its classes that take alpha: ElasticNet"),
        (
            "svm.RBF(C=1.0)",
            "classification",
            "sklearn.svm has no RBF. Its classes that take C: LinearSVC, SVC",
        ),
        (
            "preprocessing.QuantileTransformer(quantiles=[0.25, 0.75])",
            "regression",
            "(did you mean `n_quantiles`?)",
        ),
        (
            "pipeline.make_pipeline(preprocessing.quantile_transform(), linear_model.Ridge())",
            "regression",
            "preprocessing.quantile_transform() is called without X: it transforms data at once; a pipeline "
            "step is an estimator such as preprocessing.QuantileTransformer",
        ),
        (
            "pipeline.make_pipeline(ensemble.RandomForestClassifier(), svm.SVC())",
            "classification",
            "every step but the last must transform the data, and ensemble.RandomForestClassifier cannot",
        ),
    ],
)
def test_mistakes_without_one_answer_go_back_to_the_model_naming_the_choices(draft, task, says):
    review = review_calls(sklearn_draft(draft), "sklearn", task=task)
    assert any(says in p for p in review.problems), review.problems


def test_casts_follow_the_search_space_and_correct_code_is_left_alone():
    draft = sklearn_draft(
        "ensemble.RandomForestClassifier(n_estimators=float(params['n_estimators']), "
        "max_features=int(params.get('max_features', 0.5)), random_state=seed)"
    )
    review = review_calls(
        draft, "sklearn", task="classification", space={"n_estimators": True, "max_features": False}
    )
    assert "n_estimators=int(params['n_estimators'])" in review.code
    assert "max_features=float(params.get('max_features', 0.5))" in review.code
    assert len(review.repairs) == 2 and "searched as a whole number" in review.repairs[0]
    good = sklearn_draft(
        "pipeline.make_pipeline(preprocessing.StandardScaler(), svm.SVC(C=float(params['C'])))"
    )
    assert review_calls(good, "sklearn", task="classification", space={"C": False}).code == good
    # The draft's own names and the template's are not the library's business.
    own = "def helper(x):\n    return x\n\n\n" + sklearn_draft("helper(MODELS['svm'](seed))")
    assert review_calls(own, "sklearn", task="classification").repairs == []


def test_a_wrong_import_is_pointed_at_the_module_that_has_the_name():
    draft = "from sklearn.decomposition import QuantileTransformer\n\n\n" + sklearn_draft(
        "pipeline.make_pipeline(QuantileTransformer(), linear_model.Ridge())"
    )
    review = review_calls(draft, "sklearn", task="regression")
    assert "from sklearn.decomposition" not in review.code and review.problems == []
    assert any("would fail: QuantileTransformer is in sklearn.preprocessing" in r for r in review.repairs)
    # Modules and torch's own names are importable.
    fine = (
        "from sklearn import kernel_ridge\nfrom torch import nn\nimport torch.nn as tnn\n\n\n"
        + sklearn_draft("1")
    )
    assert review_calls(fine, "sklearn", task="regression").problems == []


def test_network_calls_are_checked_against_torch_too():
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_outputs, bias_init=0), nn.Softmaxx(dim=1))\n"
    )
    review = review_calls(draft, "pytorch", task="classification")
    assert any("takes no keyword `bias_init`" in p for p in review.problems)
    assert any("nn.Softmax" in r and "(spelling)" in r for r in review.repairs)


CNN_WITHOUT_FLATTEN = """def build_model(params, input_shape, n_outputs):
    return SmallCNN(input_shape, n_outputs, int(params.get("channels", 8)))


class SmallCNN(nn.Module):
    def __init__(self, input_shape, n_outputs, channels):
        super().__init__()
        layers = [nn.Conv3d(1, channels, kernel_size=3, padding=1), nn.ReLU()]
        layers.append(nn.Linear(64, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""


def test_network_drafts_get_image_layers_and_after_a_shape_error_lazy_sizes_and_a_flatten():
    torch = pytest.importorskip("torch")
    from torch import nn

    images = image_layers(CNN_WITHOUT_FLATTEN)
    assert "nn.Conv2d(1, channels" in images.code and "Conv3d -> Conv2d" in images.repairs[0]
    lazy = lazy_layers(images.code, "classification")
    assert "nn.Sequential(nn.Flatten(), nn.LazyLinear(n_outputs))" in lazy.code
    assert "nn.LazyConv2d(channels" in lazy.code and "shape error" in lazy.repairs[0]
    # The repaired network runs on digits-shaped images and gives one row of logits per image, once the
    # template's materialize() has run a batch through it.
    namespace = {"nn": nn, "torch": torch, "np": __import__("numpy")}
    exec(compile(lazy.code, "draft", "exec"), namespace)
    model = namespace["build_model"]({"channels": 4}, (1, 8, 8), 10)
    with torch.no_grad():
        model.eval()
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    # A segmentation network keeps its spatial output: no flatten is added.
    assert "Flatten" not in lazy_layers(images.code, "segmentation").code


def test_a_class_the_draft_uses_but_never_wrote_is_found_with_its_arguments():
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return DeepMLP(input_shape, n_outputs, int(params.get('width', 64)), params['dropout'], 3)\n"
    )
    (missing,) = missing_classes(draft)
    assert missing.name == "DeepMLP"
    assert missing.arguments == ("input_shape", "n_outputs", "width", "dropout", "arg4")
    # Torch's and the template's classes are not missing.
    assert (
        missing_classes("def build_model(params, input_shape, n_outputs):\n    return UNet(input_shape, 2)")
        == []
    )
    assert missing_classes("def build_model(p, s, n):\n    return Linear(3, n)") == []


def test_a_smoke_failure_puts_the_error_and_the_line_that_raised_it_first():
    detail = (
        "exited with code 1: TypeError: bad\nTraceback (most recent call last):\n"
        '  File "/airlab/work/train.py", line 300, in main\n    model = build_model(p, s)\n'
        '  File "/airlab/work/train.py", line 113, in build_model\n    svm.SVC(bogus=1),\n'
        "TypeError: SVC.__init__() got an unexpected keyword argument 'bogus'"
    )
    summary = smoke_summary(detail)
    lines = summary.splitlines()
    assert lines[0] == "error: TypeError: SVC.__init__() got an unexpected keyword argument 'bogus'"
    assert lines[1] == "raised by this line of your code: svm.SVC(bogus=1),"
    assert detail[-200:] in summary


def test_a_repair_reply_with_only_the_corrected_class_keeps_the_earlier_build_model():
    from airlab_coder.checking import merged_reply
    from airlab_coder.templates import PYTORCH, SKLEARN

    previous = (
        "def build_model(params, input_shape, n_outputs):\n    return Net(n_outputs)\n\n\n"
        "class Net(nn.Module):\n    pass\n\n\nclass Helper(nn.Module):\n    pass\n"
    )
    reply = "import torch\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n"
    merged, notes = merged_reply(previous, reply, PYTORCH)
    assert merged.startswith("import torch") and "def build_model" in merged and "class Helper" in merged
    assert merged.count("class Net") == 1 and "return x" in merged
    assert notes == ["the reply held only Net: kept the earlier build_model"]
    # A whole new draft, or a scikit-learn one, is taken as it is.
    whole = "def build_model(params, input_shape, n_outputs):\n    return nn.Linear(1, 1)\n"
    assert merged_reply(previous, whole, PYTORCH) == (whole, [])
    assert merged_reply(previous, reply, SKLEARN) == (reply, [])


def test_counts_read_without_int_are_wrapped_when_the_space_or_the_name_says_whole():
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    c = params.get('channels', 8.0)\n"
        "    return nn.Sequential(nn.Conv2d(1, c, 3), nn.Dropout(params.get('dropout', 0.5)), "
        "nn.Linear(int(params['width']), params['units']))\n"
    )
    review = review_calls(draft, "pytorch", task="classification", space={"units": False})
    assert "c = int(params.get('channels', 8.0))" in review.code
    assert "nn.Dropout(params.get('dropout', 0.5))" in review.code  # a rate stays a float
    assert "int(int(" not in review.code and "params['units'])" in review.code  # the space says real
    assert review.repairs == ["`channels` read without int(), a whole number: wrapped in int()"]


def test_a_network_without_forward_gets_one_and_batch_folding_flattens_become_per_example():
    from airlab_coder.network_parts import classes_without_forward, with_method

    draft = (
        CNN_WITHOUT_FLATTEN.replace("    def forward(self, x):\n        return self.net(x)\n", "")
        + "\n\nclass Fine(nn.Module):\n    def forward(self, x):\n        return x\n"
    )
    assert classes_without_forward(draft) == ["SmallCNN"]
    completed = with_method(draft, "SmallCNN", "def forward(self, x):\n    return self.net(x)\n")
    assert classes_without_forward(completed) == [] and "return self.net(x)" in completed
    assert with_method(draft, "SmallCNN", "not python (") == draft
    folded = (
        "def build_model(params, input_shape, n_outputs):\n    return Net()\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3, padding=1)\n        self.fc = nn.Linear(256, 10)\n\n"
        "    def forward(self, x):\n        x = self.conv(x)\n        x = x.view(-1, x.size(2) * x.size(3))\n"
        "        return self.fc(torch.flatten(x))\n"
    )
    lazy = lazy_layers(folded, "classification")
    assert "x = torch.flatten(x, 1)" in lazy.code and "self.fc(torch.flatten(x, 1))" in lazy.code
    assert "x.view(-1" not in lazy_layers(folded, "regression").code
    assert "x.view(-1" in lazy_layers(folded, "segmentation").code  # a mask keeps its pixels


def test_a_class_that_reads_build_models_params_gets_them_passed_in():
    from airlab_coder.networks import params_passed_in

    draft = (
        "def build_model(params, input_shape, n_outputs):\n    return SmallCNN(input_shape, n_outputs)\n\n\n"
        "class SmallCNN(nn.Module):\n    def __init__(self, input_shape, n_outputs, depth=2):\n"
        "        super().__init__()\n"
        "        self.out = nn.Linear(int(params.get('channels', 16)), n_outputs)\n"
    )
    review = params_passed_in(draft)
    assert "return SmallCNN(input_shape, n_outputs, params=params)" in review.code
    assert "def __init__(self, input_shape, n_outputs, depth=2, params=None):" in review.code
    assert review.repairs == ["SmallCNN read build_model's params: passed in as an argument"]
    assert params_passed_in(review.code).repairs == []  # once is enough


def test_segmentation_networks_get_skip_connections_joined_at_one_size_and_outputs_at_the_masks_size():
    torch = pytest.importorskip("torch")
    from airlab_coder.smoke_repairs import OUTPUT_SIZE_ERROR, SHAPE_ERROR, output_resized

    draft = (
        "def build_model(params, input_shape, n_outputs):\n    return Net(n_outputs)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self, n_outputs):\n        super().__init__()\n"
        "        self.down = nn.Conv2d(1, 4, 3, stride=2, padding=1)\n"
        "        self.out = nn.Conv2d(5, n_outputs, 3)\n\n"
        "    def forward(self, x):\n        return self.out(torch.cat([self.down(x), x], dim=1))\n"
    )
    cat_error = (
        "RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 16 but got size 32"
    )
    size_error = "RuntimeError: size mismatch (got input: [64, 4, 14, 14] , target: [64, 32, 32]"
    assert SHAPE_ERROR.search(cat_error) and OUTPUT_SIZE_ERROR.search(size_error)
    joined = lazy_layers(draft, "segmentation")
    assert "torch.cat(same_size([self.down(x), x]), dim=1)" in joined.code
    resized = output_resized(joined.code)
    assert "return InputSized(Net(n_outputs))" in resized.code and "InputSized" in resized.repairs[0]
    assert output_resized(resized.code).repairs == []  # not wrapped twice
    # The repaired network runs on shapes-sized images and gives logits per pixel at the masks' size.
    model = _built(resized.code, {}, (1, 32, 32), 3)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def _template_namespace() -> dict:
    """The PyTorch template's definitions (conv_block, CNN, UNet, materialize, ...), without its main."""
    from airlab.job_templates import template_source

    namespace: dict = {}
    source = template_source("pytorch_train_template.py")
    exec(compile(source.split("# <airlab:model>")[0], "template", "exec"), namespace)
    return namespace


def _built(code: str, params: dict, input_shape: tuple[int, ...], n_outputs: int):
    """The network a draft's build_model returns in the template, its lazy layers sized by one batch of
    two examples (as the template's materialize() does before training)."""
    import torch

    namespace = _template_namespace()
    exec(compile(code, "draft", "exec"), namespace)
    model = namespace["build_model"](params, input_shape, n_outputs)
    namespace["materialize"](model, torch.zeros(2, *input_shape))
    return model


def test_a_residual_added_in_place_is_added_out_of_place_and_the_network_trains():
    torch = pytest.importorskip("torch")
    from airlab_coder.networks import out_of_place

    # A 1.5B draft for "Residual CNN" (bench-coder): the in-place sum overwrites a ReLU's output.
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return ResidualCNN(input_shape, n_outputs, int(params.get('channels', 16)))\n\n\n"
        "class ResidualCNN(nn.Module):\n    def __init__(self, input_shape, n_outputs, channels):\n"
        "        super().__init__()\n"
        "        self.features = nn.Sequential(conv_block(input_shape[0], channels), "
        "conv_block(channels, channels * 2))\n"
        "        self.out = nn.LazyLinear(n_outputs)\n\n"
        "    def forward(self, x):\n        residual = x\n        x = self.features(x)\n"
        "        x += residual\n        return self.out(torch.flatten(x, 1))\n"
    )

    def one_step(code: str) -> None:
        model = _built(code, {"channels": 4}, (1, 8, 8), 10)
        model.train()
        model(torch.zeros(2, 1, 8, 8)).sum().backward()

    with pytest.raises(RuntimeError, match="inplace operation"):
        one_step(draft)
    review = out_of_place(draft)
    assert "x = x + residual" in review.code and "+=" not in review.code
    assert review.repairs == [
        "in-place arithmetic in forward (x += ...) made out of place: autograd needs what it overwrote"
    ]
    one_step(review.code)
    assert out_of_place("total = 0\ntotal += 1\n").repairs == []  # only a network's forward


def test_dilated_convolutions_of_a_segmentation_network_are_padded_to_keep_the_image_size():
    torch = pytest.importorskip("torch")
    from airlab_coder.networks import dilated_padding

    draft = (
        "def build_model(params, input_shape, n_outputs):\n    return Dilated(n_outputs)\n\n\n"
        "class Dilated(nn.Module):\n    def __init__(self, n_outputs):\n        super().__init__()\n"
        "        self.net = nn.Sequential(\n"
        "            nn.Conv2d(1, 8, kernel_size=3, padding=1, dilation=2), nn.ReLU(),\n"
        "            nn.Conv2d(8, 8, 3, 1, 1, 4), nn.ReLU(),\n"
        "            nn.LazyConv2d(8, 3, dilation=8), nn.ReLU(),\n"
        "            nn.Conv2d(8, n_outputs, 3, padding=1),\n        )\n\n"
        "    def forward(self, x):\n        return self.net(x)\n"
    )
    review = dilated_padding(draft, "segmentation")
    assert "nn.Conv2d(1, 8, kernel_size=3, padding=2, dilation=2)" in review.code
    assert (
        "nn.Conv2d(8, 8, 3, 1, 4, 4)" in review.code
        and "nn.LazyConv2d(8, 3, dilation=8, padding=8)" in review.code
    )
    assert "nn.Conv2d(8, n_outputs, 3, padding=1)" in review.code  # not dilated: as it was
    assert review.repairs == [
        "dilated convolutions padded to keep the image's size "
        "(dilation 2: padding 1 -> 2, dilation 4: padding 1 -> 4, dilation 8: padding 0 -> 8)"
    ]
    assert dilated_padding(draft, "classification").repairs == []  # pooling networks may shrink
    model = _built(review.code, {}, (1, 32, 32), 3)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_a_block_class_passed_to_the_templates_networks_is_found_and_builds_every_level():
    torch = pytest.importorskip("torch")

    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return UNet(input_shape, n_outputs, width=4, block=GatedBlock)\n"
    )
    (missing,) = missing_classes(draft)
    assert missing.name == "GatedBlock" and missing.arguments == ("channels_in", "channels_out")
    block = (
        "class GatedBlock(nn.Module):\n    def __init__(self, channels_in, channels_out):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)\n"
        "        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Sigmoid())\n\n"
        "    def forward(self, x):\n        x = self.conv(x)\n        return x * self.gate(x)\n"
    )
    assert missing_classes(f"{draft}\n\n{block}") == []
    namespace = _template_namespace()
    exec(compile(f"{draft}\n\n{block}", "draft", "exec"), namespace)
    unet = namespace["build_model"]({}, (1, 32, 32), 3)
    assert unet(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert sum(type(m).__name__ == "GatedBlock" for m in unet.modules()) == 5  # 3 down, 2 merge
    cnn = namespace["CNN"]((1, 8, 8), 10, channels=4, depth=2, block=namespace["GatedBlock"])
    assert cnn(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_a_searched_hyperparameter_the_code_never_reads_is_a_problem():
    fixed = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return CNN(input_shape, n_outputs, channels=16, dropout=0.2)\n"
    )
    review = review_calls(fixed, "pytorch", task="classification", space={"dropout": False})
    assert review.problems == [
        "the idea searches `dropout`, but build_model never reads it: every trial would run the same "
        "model. Read each with params.get(name, default) and use it"
    ]
    # The template reads its training settings itself.
    training = {"dropout": False, "learning_rate": False, "epochs": True}
    assert review_calls(fixed, "pytorch", task="classification", space=training).problems == review.problems
    reads = fixed.replace("dropout=0.2", "dropout=params.get('dropout', 0.2)")
    assert review_calls(reads, "pytorch", task="classification", space={"dropout": False}).problems == []
    # params handed on whole (to the template's registry, a class, **params) are read there.
    for handed in ("MODELS['cnn'](input_shape, n_outputs, params)", "Net(**params)", "Net(params=params)"):
        code = f"def build_model(params, input_shape, n_outputs):\n    return {handed}\n"
        assert review_calls(code, "pytorch", space={"dropout": False, "width": True}).problems == []


def test_a_block_adding_its_input_at_other_channels_gets_a_projection_shortcut_and_runs_in_the_unet():
    torch = pytest.importorskip("torch")
    from airlab_coder.smoke_repairs import after_smoke_error

    # A 1.5B draft for "U-Net with residual blocks" (bench-coder), the second conv_block's input fixed.
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return UNet(input_shape, n_outputs, width=4, block=ResidualBlock)\n\n\n"
        "class ResidualBlock(nn.Module):\n    def __init__(self, channels_in, channels_out):\n"
        "        super().__init__()\n        self.conv1 = conv_block(channels_in, channels_out)\n"
        "        self.conv2 = conv_block(channels_out, channels_out)\n\n"
        "    def forward(self, x):\n        residual = x\n        x = self.conv1(x)\n"
        "        return self.conv2(x) + residual\n"
    )
    error = (
        "RuntimeError: The size of tensor a (16) must match the size of tensor b (32) at non-singleton "
        "dimension 1"
    )
    review = after_smoke_error(draft, "segmentation", error)
    assert "return self.conv2(x) + self.shortcut(residual)" in review.code
    assert (
        "self.shortcut = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out "
        "else nn.Identity()" in review.code
    )
    assert review.repairs == [
        "ResidualBlock added its input to an output of other channels: the input projected by a 1x1 "
        "convolution first (a projection shortcut)"
    ]
    assert after_smoke_error(review.code, "segmentation", error).repairs == []  # once
    model = _built(review.code, {}, (1, 32, 32), 3)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_a_classifier_whose_logits_keep_height_and_width_gets_them_averaged():
    torch = pytest.importorskip("torch")
    from airlab_coder.smoke_repairs import after_smoke_error

    draft = (
        "def build_model(params, input_shape, n_outputs):\n    return Net(n_outputs)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self, n_outputs):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 8, 3, padding=1, groups=1)\n"
        "        self.out = nn.Conv2d(8, n_outputs, 1)\n\n"
        "    def forward(self, x):\n        return self.out(self.conv(x))\n"
    )
    error = (
        "RuntimeError: only batches of spatial targets supported (3D tensors) but got targets of dimension: 1"
    )
    review = after_smoke_error(draft, "classification", error)
    assert "return Pooled(Net(n_outputs))" in review.code
    assert review.repairs == ["the classifier's logits had a height and width: averaged over them (Pooled)"]
    assert _built(review.code, {}, (1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert after_smoke_error(draft, "classification", "ValueError: something else").repairs == []


def test_a_block_that_cannot_be_built_per_level_is_sent_back_before_any_run():
    from airlab_coder.networks import block_problems

    # The 1.5B model's "U-Net with flip augmentation" (bench-coder): augmentation written as a block.
    flip = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return UNet(input_shape, n_outputs, block=FlipBlock)\n\n\n"
        "class FlipBlock(nn.Module):\n    def __init__(self):\n        super().__init__()\n\n"
        "    def forward(self, x, y):\n        return torch.flip(x, [2]), torch.flip(y, [2])\n"
    )
    (problem,) = block_problems(flip)
    assert problem.startswith("FlipBlock is passed as block=: the network builds it as FlipBlock(channels_in")
    assert "augment(inputs, targets, generator)" in problem
    (built_once,) = block_problems(flip.replace("block=FlipBlock", "block=FlipBlock(1)"))
    assert "pass the class itself, block=FlipBlock" in built_once
    fine = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return CNN(input_shape, n_outputs, block=Block)\n\n\n"
        "class Block(nn.Module):\n    def __init__(self, channels_in, channels_out, dropout=0.1):\n"
        "        super().__init__()\n\n    def forward(self, x):\n        return x\n"
    )
    assert block_problems(fine) == []
    assert block_problems(fine.replace("dropout=0.1", "dropout")) != []  # built with two arguments only
