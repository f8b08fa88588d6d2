"""airlab job template: train a PyTorch network and score it honestly.

Three tasks: classification (tabular features or images), regression (tabular), and semantic segmentation
(images and per-pixel class masks). The data is split once into a development part and a held-out test
part by `split_seed` (the same for every experiment of a research); each run splits the development part
into train and validation by its own `seed`, trains for `epochs` (a fidelity the search can use), and
reports the validation score (what the search compares) and the test score (what the report compares),
plus per-example test results so the reviewer can bootstrap over test examples (for segmentation: each
image's Dice or IoU).

Follows the experiment contract: metrics.jsonl (loss and the validation metric per epoch), result.json
(with the device, torch and CUDA versions, the parameter count and peak memory), the trained weights in
models/, and for segmentation a few test images with their true and predicted masks in predictions/.
Uses a GPU when one is visible (mixed precision there). Settings: CONFIG below, overridden by config.json
in the work dir, then by the JOB_CONFIG variable. The coder rewrites only the function between the
airlab:model markers."""

import json
import math
import os
import random
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

# conv_block's and drafts' lazy layers are fine here: materialize() runs one batch before training.
warnings.filterwarnings("ignore", message="Lazy modules are a new feature")

CONFIG = {
    "dataset": "digits",  # digits | breast_cancer | wine | diabetes | shapes | npz | folder
    # for "npz": the file (arrays x and y); for "folder": a folder per class of images, or for segmentation
    # images/ and masks/ with the same file names (mounted read-only)
    "data_path": "",
    "task": "classification",  # classification | regression | segmentation
    "metric": "accuracy",  # accuracy | f1_macro | roc_auc | rmse | mae | r2 | dice | iou
    "model": "mlp",  # the registry entry the baseline's build_model uses
    "params": {},  # hyperparameters: the network's (width, depth, ...) and training's (below)
    "seed": 0,  # train/validation split, initialisation and batch order
    "split_seed": 0,  # the held-out test split: fixed for a whole research
    "test_fraction": 0.25,
    "validation_fraction": 0.2,
    "max_samples": 0,  # > 0: a smoke run on a small subset, one epoch
    "learning_curve": False,  # accepted for the common contract; every run logs each epoch anyway
    # A search's early stop: {epoch: score}, after that epoch training ends when the validation score is
    # worse than the score (the median of the research's runs at that epoch); the run reports where it was.
    "stop_below": {},
    "save_model": True,
}
# Training settings read from params, with these defaults.
TRAINING = {"epochs": 10, "batch_size": 64, "learning_rate": 1e-3, "weight_decay": 0.0, "optimizer": "adam"}
LOWER_IS_BETTER = ("rmse", "mae")
SHAPES = {"samples": 1000, "size": 32, "classes": ("background", "circle", "square", "triangle")}


# ---- networks the baseline and the registry build ------------------------------------------------------


class MLP(nn.Module):
    """Fully connected layers over the flattened input."""

    def __init__(self, input_shape, n_outputs, width=128, depth=1, dropout=0.1):
        super().__init__()
        layers, size = [nn.Flatten()], int(np.prod(input_shape))
        for _ in range(int(depth)):
            layers += [nn.Linear(size, int(width)), nn.ReLU(), nn.Dropout(float(dropout))]
            size = int(width)
        layers.append(nn.Linear(size, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def conv_block(channels_in, channels_out):
    """Two 3x3 convolutions with batch norm and ReLU, same size. The first takes its input channels from
    the first batch (materialize()), so `channels_in` only documents what the caller expects."""
    return nn.Sequential(
        nn.LazyConv2d(channels_out, 3, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU(),
    )  # fmt: skip


class CNN(nn.Module):
    """Convolution blocks, each halving the image while it is at least 4 pixels wide, then a linear head.
    `block(channels_in, channels_out)` builds each block (any module that keeps height and width)."""

    def __init__(self, input_shape, n_outputs, channels=16, depth=2, dropout=0.1, block=None):
        super().__init__()
        block = block or conv_block
        blocks, width, size = [], int(channels), input_shape[0]
        side = min(input_shape[1:])
        for level in range(int(depth)):
            blocks.append(block(size, width * 2**level))
            size = width * 2**level
            if side >= 4:
                blocks.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(float(dropout)), nn.Linear(size, n_outputs)
        )

    def forward(self, x):
        return self.head(self.features(x))


class UNet(nn.Module):
    """U-Net: an encoder that halves the image `depth` times, a decoder that doubles it back with skip
    connections, and per-pixel class logits. `block(channels_in, channels_out)` builds each level's block
    (any module that keeps height and width)."""

    def __init__(self, input_shape, n_outputs, width=16, depth=2, block=None):
        super().__init__()
        block = block or conv_block
        channels = [int(width) * 2**level for level in range(int(depth) + 1)]
        self.down = nn.ModuleList()
        previous = input_shape[0]
        for c in channels:
            self.down.append(block(previous, c))
            previous = c
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for c in reversed(channels[:-1]):
            self.up.append(nn.ConvTranspose2d(previous, c, 2, stride=2))
            self.merge.append(block(2 * c, c))
            previous = c
        self.out = nn.Conv2d(previous, n_outputs, 1)

    def forward(self, x):
        skips = []
        for index, block in enumerate(self.down):
            x = block(x)
            if index < len(self.down) - 1:
                skips.append(x)
                x = functional.max_pool2d(x, 2)
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.out(x)


class FCN(nn.Module):
    """A fully convolutional network at full resolution (dilated convolutions widen what each pixel sees)."""

    def __init__(self, input_shape, n_outputs, width=16, depth=3):
        super().__init__()
        layers, previous = [], input_shape[0]
        for level in range(int(depth)):
            dilation = 2**level
            layers += [nn.Conv2d(previous, int(width), 3, padding=dilation, dilation=dilation),
                       nn.BatchNorm2d(int(width)), nn.ReLU()]  # fmt: skip
            previous = int(width)
        layers.append(nn.Conv2d(previous, n_outputs, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def _kwargs(params, names):
    return {name: params[name] for name in names if name in params}


MODELS = {
    "mlp": lambda shape, n, p: MLP(shape, n, **_kwargs(p, ("width", "depth", "dropout"))),
    "cnn": lambda shape, n, p: CNN(shape, n, **_kwargs(p, ("channels", "depth", "dropout"))),
    "unet": lambda shape, n, p: UNet(shape, n, **_kwargs(p, ("width", "depth"))),
    "fcn": lambda shape, n, p: FCN(shape, n, **_kwargs(p, ("width", "depth"))),
}


def materialize(model, inputs):
    """Lazy layers (nn.LazyLinear, nn.LazyConv2d, ...) learn their input sizes from one forward pass; it
    must happen before the optimiser is given their weights."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        model.eval()
        with torch.no_grad():
            model(inputs)


def build_optimizer(params, model, epochs):
    """The optimiser and its learning-rate schedule (stepped once per epoch)."""
    train = training(params)
    name = str(train["optimizer"]).lower()
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in kinds:
        raise SystemExit(f"unknown optimizer {name!r}; known: {', '.join(kinds)}")
    extra = {"momentum": 0.9} if name == "sgd" else {}
    optimizer = kinds[name](
        model.parameters(),
        lr=float(train["learning_rate"]),
        weight_decay=float(train["weight_decay"]),
        **extra,
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))


def same_size(tensors):
    """Feature maps resized to the first one's height and width, to be joined along the channels (the
    coder's repair of a skip connection whose sizes differ)."""
    size = tensors[0].shape[-2:]
    return [
        t if t.shape[-2:] == size else functional.interpolate(t, size=size, mode="nearest") for t in tensors
    ]


class InputSized(nn.Module):
    """A segmentation network's per-pixel logits resized to its input's height and width (the coder's repair
    of a network whose output is smaller or larger than the masks)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        logits = self.network(x)
        if logits.shape[-2:] == x.shape[-2:]:
            return logits
        return functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class Pooled(nn.Module):
    """A classifier's logits averaged over their height and width when they still have them (the coder's
    repair of a fully convolutional classifier without a pooling head: global average pooling)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        logits = self.network(x)
        return logits.flatten(2).mean(-1) if logits.dim() > 2 else logits


def augment(inputs, targets, generator):
    """A training batch as the network sees it: unchanged here (an idea may flip, shift or add noise, to
    the images and, for segmentation, the same to their masks)."""
    return inputs, targets


# The coder rewrites what follows up to the closing marker: build_model, and when an idea changes them, its
# own build_optimizer and augment (a definition here replaces the one above).
# <airlab:model>
def build_model(params, input_shape, n_outputs):
    """The network to train. Input: a float tensor (batch, *input_shape); input_shape is (features,) for
    tabular data and (channels, height, width) for images. Output: (batch, n_outputs) for classification
    and regression, (batch, n_outputs, height, width) class logits per pixel for segmentation."""
    return MODELS[settings()["model"]](input_shape, n_outputs, params)


# </airlab:model>


def settings():
    config = dict(CONFIG)
    if Path("config.json").is_file():
        config.update(json.loads(Path("config.json").read_text()))
    config.update(json.loads(os.environ.get("JOB_CONFIG") or "{}"))
    for name in ("seed", "split_seed", "max_samples"):
        config[name] = int(config[name])
    return config


def training(params):
    chosen = {name: params.get(name, default) for name, default in TRAINING.items()}
    chosen["epochs"], chosen["batch_size"] = int(chosen["epochs"]), int(chosen["batch_size"])
    return chosen


def seed_everything(seed):
    # As many threads as the runner gave this job cores (JOB_CPU_THREADS), not one per core of the host.
    threads = int(os.environ.get("JOB_CPU_THREADS") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# ---- data ----------------------------------------------------------------------------------------------


def shapes(samples, size, seed=0):
    """Grey images of overlapping circles, squares and triangles of random brightness in noise, and their
    class masks (0 background, 1 circle, 2 square, 3 triangle; a later shape covers an earlier one). The
    same seed gives the same data: nothing is downloaded."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.zeros((samples, 1, size, size), dtype=np.float32)
    masks = np.zeros((samples, size, size), dtype=np.int64)
    for index in range(samples):
        image = np.zeros((size, size), dtype=np.float32)
        for _ in range(rng.integers(1, 5)):
            kind = int(rng.integers(1, 4))
            radius = rng.uniform(size / 10, size / 4)
            cy, cx = rng.uniform(radius, size - radius, 2)
            if kind == 1:
                inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
            elif kind == 2:
                inside = (np.abs(rows - cy) <= radius * 0.8) & (np.abs(cols - cx) <= radius * 0.8)
            else:  # an upward triangle: below its apex, inside both slanted sides
                top, bottom = cy - radius, cy + radius * 0.7
                half = (rows - top) / (bottom - top) * radius
                inside = (rows >= top) & (rows <= bottom) & (np.abs(cols - cx) <= half)
            image[inside] = rng.uniform(0.4, 1.0)
            masks[index][inside] = kind
        images[index, 0] = image + rng.normal(0, 0.25, (size, size)).astype(np.float32)
    return images, masks


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def read_images(paths, size=None, grey=None, masks=False):
    """Images as arrays of one size (the first one's unless given): grey when the first is, else RGB.
    Masks keep their pixel values (class ids) and are resized without blending."""
    from PIL import Image

    arrays = []
    for path in paths:
        with Image.open(path) as image:
            if grey is None:
                grey = image.mode in ("L", "I", "I;16", "1", "P") or masks
            image = image.convert("L" if grey else "RGB")
            size = size or image.size
            if image.size != size:
                image = image.resize(size, Image.NEAREST if masks else Image.BILINEAR)
            arrays.append(np.asarray(image))
    return np.stack(arrays), size, grey


def load_folder(config):
    """A folder per class (the ImageFolder layout), or images/ and masks/ for segmentation."""
    root = Path(config["data_path"])
    if config["task"] == "segmentation":
        names = sorted(p.name for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        missing = [n for n in names if not (root / "masks" / n).is_file()]
        if not names or missing:
            raise SystemExit(f"{root}: segmentation data is images/ and masks/ with the same file names "
                             f"(no mask for: {', '.join(missing[:5]) or 'no images found'})")  # fmt: skip
        images, size, grey = read_images([root / "images" / n for n in names])
        masks, _, _ = read_images([root / "masks" / n for n in names], size=size, masks=True)
        return to_channels(images, grey), masks.astype(np.int64)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    if len(classes) < 2 or not files:
        raise SystemExit(f"{root}: an image folder holds one folder of images per class (found {classes})")
    images, _, grey = read_images([f for f, _ in files])
    return to_channels(images, grey), np.array([c for _, c in files])


def to_channels(images, grey):
    """(n, channels, height, width) floats in [0, 1]."""
    scaled = images.astype(np.float32) / 255.0
    return scaled[:, None] if grey else scaled.transpose(0, 3, 1, 2)


def load(config):
    """Inputs (float32, (n, features) or (n, channels, height, width)) and targets (class ids, numbers, or
    (n, height, width) class masks)."""
    name = config["dataset"]
    if name == "shapes":
        return shapes(SHAPES["samples"], SHAPES["size"])
    if name == "folder":
        return load_folder(config)
    if name == "npz":
        with np.load(config["data_path"]) as data:
            if "x" not in data or "y" not in data:
                raise SystemExit(f"{config['data_path']}: an .npz dataset holds arrays 'x' and 'y'")
            x, y = np.asarray(data["x"], dtype=np.float32), np.asarray(data["y"])
        if x.ndim == 3:  # (n, height, width): one channel
            x = x[:, None]
        if x.ndim == 4 and x.max() > 1.5:  # 8-bit images
            x = x / 255.0
        return x, (y.astype(np.int64) if config["task"] != "regression" else y.astype(np.float32))
    from sklearn import datasets

    if name == "digits":  # 8x8 grey images of handwritten digits, values 0..16
        x, y = datasets.load_digits(return_X_y=True)
        return (x / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), y
    loaders = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
               "diabetes": datasets.load_diabetes}  # fmt: skip
    x, y = loaders[name](return_X_y=True)
    return x.astype(np.float32), (y.astype(np.float32) if config["task"] == "regression" else y)


def split(config, x, y):
    """train, validation and test parts: the test part by split_seed, the rest by the run's seed."""
    from sklearn.model_selection import train_test_split

    classes = y if config["task"] == "classification" else None
    x_dev, x_test, y_dev, y_test = train_test_split(
        x, y, test_size=config["test_fraction"], random_state=config["split_seed"], stratify=classes
    )
    if config["max_samples"]:
        keep = config["max_samples"]
        x_dev, y_dev, x_test, y_test = (
            x_dev[:keep],
            y_dev[:keep],
            x_test[: max(keep // 4, 20)],
            y_test[: max(keep // 4, 20)],
        )
    stratify = y_dev if config["task"] == "classification" and not config["max_samples"] else None
    x_train, x_val, y_train, y_val = train_test_split(
        x_dev, y_dev, test_size=config["validation_fraction"], random_state=config["seed"], stratify=stratify
    )
    if x_train.ndim == 2:  # tabular: standardise by the training part's statistics only
        mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
        x_train, x_val, x_test = ((part - mean) / std for part in (x_train, x_val, x_test))
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


# ---- scores --------------------------------------------------------------------------------------------


def overlap_per_image(metric, truth, predicted, classes):
    """Each image's Dice (or IoU), averaged over the foreground classes present in its truth or its
    prediction (an image where neither has any foreground scores 1)."""
    scores = []
    for t, p in zip(truth, predicted, strict=True):
        per_class = []
        for c in range(1, classes):
            a, b = t == c, p == c
            total, both = a.sum() + b.sum(), (a & b).sum()
            if total == 0:
                continue
            per_class.append(2 * both / total if metric == "dice" else both / (total - both))
        scores.append(float(np.mean(per_class)) if per_class else 1.0)
    return np.array(scores)


def score(metric, truth, output, task):
    """The metric, and what the reviewer bootstraps over: (predictions or per-example scores)."""
    if task == "segmentation":
        per_image = overlap_per_image(metric, truth, output.argmax(axis=1), output.shape[1])
        return float(per_image.mean()), per_image
    from sklearn import metrics

    if task == "regression":
        predicted = output[:, 0]
        if metric == "r2":
            return float(metrics.r2_score(truth, predicted)), predicted
        error = predicted - truth
        value = float(np.sqrt(np.mean(error**2))) if metric == "rmse" else float(np.mean(np.abs(error)))
        return value, predicted
    if metric == "roc_auc":
        probabilities = torch.softmax(torch.as_tensor(output), dim=1).numpy()
        if probabilities.shape[1] == 2:
            return float(metrics.roc_auc_score(truth, probabilities[:, 1])), probabilities[:, 1]
        return float(metrics.roc_auc_score(truth, probabilities, multi_class="ovr")), probabilities
    predicted = output.argmax(axis=1)
    if metric == "f1_macro":
        return float(metrics.f1_score(truth, predicted, average="macro")), predicted
    return float((predicted == truth).mean()), predicted


# ---- training ------------------------------------------------------------------------------------------


# Examples per forward pass when scoring: the largest batch a full run's network sees.
EVALUATION_BATCH = 256


def outputs(model, x, device, scale=(0.0, 1.0), batch_size=EVALUATION_BATCH):
    """The model's outputs for x (a regression's back in the target's units: `scale` is (mean, std))."""
    model.eval()
    parts = []
    with torch.no_grad(), autocast(device):
        for start in range(0, len(x), batch_size):
            parts.append(model(torch.as_tensor(x[start : start + batch_size], device=device)).float().cpu())
    return torch.cat(parts).numpy() * scale[1] + scale[0]


def autocast(device):
    """Mixed precision on a GPU (bfloat16 where it is supported); full precision on the CPU."""
    if device.type == "cuda":
        kind = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=kind)
    return torch.autocast("cpu", enabled=False)


def full_size_batches(model, inputs, targets, loss_fn, batch_size, generator, device):
    """A smoke run's subset is smaller than one of the full run's scoring batches: here the network takes
    one training batch (forward and backward) and one scoring batch at their full sizes, made of the
    subset's examples repeated, so a network too large for the memory limit fails its smoke run instead of
    every trial. The weights do not change (no optimiser step)."""
    model.train()
    batch = torch.arange(batch_size, device=device) % len(inputs)
    with autocast(device):
        batch_inputs, batch_targets = augment(inputs[batch], targets[batch], generator)
        loss_fn(model(batch_inputs).float(), batch_targets).backward()
    model.zero_grad(set_to_none=True)
    scoring = torch.arange(EVALUATION_BATCH, device=device) % len(inputs)
    outputs(model, inputs[scoring].cpu().numpy(), device)


def peak_memory_mib(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main():
    began = time.time()
    config = settings()
    params, task, metric = dict(config["params"]), config["task"], config["metric"]
    train = training(params)
    if config["max_samples"]:
        train["epochs"] = 1
    seed_everything(config["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = load(config)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(config, x, y)
    if task == "segmentation":
        n_outputs = int(max(y.max() + 1, 2))
    elif task == "classification":
        n_outputs = int(y.max() + 1)
    else:
        n_outputs = 1
    model = build_model(params, tuple(x_train.shape[1:]), n_outputs).to(device)
    materialize(model, torch.as_tensor(x_train[:2], device=device))
    optimizer, scheduler = build_optimizer(params, model, train["epochs"])
    loss_fn = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss()
    inputs = torch.as_tensor(x_train, device=device)
    targets = torch.as_tensor(y_train, device=device)
    scale = (0.0, 1.0)
    if task == "regression":  # the network learns standardised targets; outputs() maps them back
        scale = (float(y_train.mean()), float(y_train.std() + 1e-8))
        targets = ((targets.float() - scale[0]) / scale[1]).unsqueeze(1)
    generator = torch.Generator().manual_seed(config["seed"])
    if config["max_samples"]:
        full_size_batches(model, inputs, targets, loss_fn, train["batch_size"], generator, device)
    stop_below = {int(epoch): float(value) for epoch, value in config["stop_below"].items()}
    curve, stopped_at = [], None
    for epoch in range(train["epochs"]):
        model.train()
        order = torch.randperm(len(inputs), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(order), train["batch_size"]):
            batch = order[start : start + train["batch_size"]]
            optimizer.zero_grad()
            with autocast(device):
                batch_inputs, batch_targets = augment(inputs[batch], targets[batch], generator)
                loss = loss_fn(model(batch_inputs).float(), batch_targets)
            if not torch.isfinite(loss):
                raise SystemExit(f"the training loss is not finite at epoch {epoch}: {loss.item()}")
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if scheduler is not None:
            scheduler.step()
        validation, _ = score(metric, y_val, outputs(model, x_val, device, scale), task)
        with open("metrics.jsonl", "a") as handle:
            line = {"step": epoch, "epoch": epoch + 1, "train_loss": total / len(order)}
            handle.write(json.dumps(line | {f"val_{metric}": validation}) + "\n")
        curve.append(validation)
        threshold = stop_below.get(epoch + 1)
        if threshold is not None and epoch + 1 < train["epochs"]:
            behind = validation > threshold if metric in LOWER_IS_BETTER else validation < threshold
            if behind:
                stopped_at = epoch + 1
                print(f"stopped after epoch {stopped_at}: validation {metric} {validation:.4f}, "
                      f"the stop rule's {threshold:.4f}")  # fmt: skip
                break
    test_output = outputs(model, x_test, device, scale)
    validation, _ = score(metric, y_val, outputs(model, x_val, device, scale), task)
    test, per_example = score(metric, y_test, test_output, task)
    if not (math.isfinite(validation) and math.isfinite(test)):
        raise SystemExit(f"the {metric} is not finite: validation {validation}, test {test}")
    if config["save_model"]:
        Path("models").mkdir(exist_ok=True)
        torch.save(model.state_dict(), "models/model.pt")
    if task == "segmentation":  # a few test images, their true masks and the predicted ones, for the report
        Path("predictions").mkdir(exist_ok=True)
        shown = slice(0, min(4, len(x_test)))
        np.savez_compressed("predictions/masks.npz", images=x_test[shown, 0], truth=y_test[shown],
                            predicted=test_output[shown].argmax(axis=1).astype(np.uint8))  # fmt: skip
    result = {
        "metrics": {metric: test, f"val_{metric}": validation},
        "seed": config["seed"],
        "duration_seconds": time.time() - began,
        "config": config,
        "epochs": train["epochs"],
        "validation_curve": [round(value, 6) for value in curve],
        "split": {"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        "device": str(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
        # The GPUs the runner's lease made visible to this job (empty on CPU).
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_memory_mib": round(peak_memory_mib(device), 1),
    }
    if stopped_at is not None:
        result["stopped_at_epoch"] = stopped_at
    if len(y_test) <= 5000:
        # Segmentation: each test image's score, under its index (the reviewer bootstraps over images).
        indices = list(range(len(y_test)))
        result["test_targets"] = indices if task == "segmentation" else y_test.tolist()
        result["test_predictions"] = np.round(np.asarray(per_example, dtype=float), 6).tolist()
    Path("result.json").write_text(json.dumps(result))
    print(json.dumps(result["metrics"]))


if __name__ == "__main__":
    main()
