"""The PyTorch job template run as a job would run it (in a work dir, settings from JOB_CONFIG): each task,
the experiment contract, seeding, and what result.json says about the run."""

from __future__ import annotations

import contextlib
import io
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from airlab import domain
from airlab.job_templates import template_source
from airlab.results import RunResult

pytest.importorskip("torch")


def run_template(work: Path, monkeypatch, config: dict) -> dict:
    monkeypatch.chdir(work)
    monkeypatch.setenv("JOB_CONFIG", json.dumps(config))
    monkeypatch.setenv("JOB_CPU_THREADS", "1")
    (work / "train.py").write_text(template_source("pytorch_train_template.py"))
    runpy.run_path(str(work / "train.py"), run_name="__main__")
    result = json.loads((work / "result.json").read_text())
    RunResult.model_validate(result)  # the runner's check of the contract
    return result


def template_module() -> dict:
    """The template's names, without running its main()."""
    return runpy.run_path(
        str(Path(__file__).parents[1] / "src/airlab/job_templates/pytorch_train_template.py")
    )


def epochs_logged(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]


def test_a_cnn_on_digits_as_images_logs_each_epoch_and_reports_its_run(tmp_path, monkeypatch):
    config = {"model": "cnn", "params": {"epochs": 3, "channels": 8, "learning_rate": 0.01}, "seed": 1}
    result = run_template(tmp_path, monkeypatch, config)
    logged = epochs_logged(tmp_path)
    assert [row["epoch"] for row in logged] == [1, 2, 3]
    assert all(row["train_loss"] > 0 and 0 <= row["val_accuracy"] <= 1 for row in logged)
    assert logged[-1]["train_loss"] < logged[0]["train_loss"]
    assert result["metrics"]["accuracy"] > 0.8 and result["epochs"] == 3
    assert (result["device"], result["cuda_version"]) == ("cpu", "")
    assert result["torch_version"].startswith("2.") and result["parameters"] > 1000
    assert result["peak_memory_mib"] > 0
    # Predicted classes for every test image, beside the true ones, for the reviewer's bootstrap.
    assert len(result["test_targets"]) == len(result["test_predictions"]) == result["split"]["test"]
    assert (tmp_path / "models" / "model.pt").stat().st_size > 0


def test_a_trial_behind_its_stop_rule_ends_at_the_checkpoint_and_says_so(tmp_path, monkeypatch):
    params = {"epochs": 6, "channels": 8, "learning_rate": 0.01}
    (tmp_path / "behind").mkdir()
    (tmp_path / "ahead").mkdir()
    # No network reaches an accuracy of 1.1: the run stops after epoch 2 and reports what it reached.
    behind = {"model": "cnn", "params": params, "seed": 1, "stop_below": {"2": 1.1, "4": 1.1}}
    result = run_template(tmp_path / "behind", monkeypatch, behind)
    assert result["stopped_at_epoch"] == 2 and result["epochs"] == 6
    assert len(result["validation_curve"]) == 2 == len(epochs_logged(tmp_path / "behind"))
    assert result["metrics"]["val_accuracy"] == pytest.approx(result["validation_curve"][-1], abs=1e-6)
    # Every network beats 0.0: the run trains for all its epochs.
    ahead = {"model": "cnn", "params": params, "seed": 1, "stop_below": {"2": 0.0, "4": 0.0}}
    result = run_template(tmp_path / "ahead", monkeypatch, ahead)
    assert "stopped_at_epoch" not in result and len(result["validation_curve"]) == 6


def test_the_stop_rule_of_an_error_metric_stops_what_is_above_it(tmp_path, monkeypatch):
    config = {"dataset": "diabetes", "task": "regression", "metric": "rmse", "model": "mlp",
              "params": {"epochs": 4}, "stop_below": {"2": 1.0}}  # fmt: skip
    result = run_template(tmp_path, monkeypatch, config)
    assert result["stopped_at_epoch"] == 2  # an RMSE of diabetes' targets is far above 1.0


def test_the_same_seed_gives_the_same_scores(tmp_path, monkeypatch):
    config = {"model": "mlp", "params": {"epochs": 2}, "seed": 3}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_template(tmp_path / "a", monkeypatch, config)
    second = run_template(tmp_path / "b", monkeypatch, config)
    assert first["metrics"] == second["metrics"]


def test_unet_segmentation_on_shapes_scores_dice_per_image_and_keeps_masks(tmp_path, monkeypatch):
    config = {
        "dataset": "shapes",
        "task": "segmentation",
        "metric": "dice",
        "model": "unet",
        "params": {"epochs": 2, "width": 8},
        "max_samples": 120,  # the smoke size: one epoch on a subset
    }
    result = run_template(tmp_path, monkeypatch, config)
    assert result["epochs"] == 1  # a smoke run trains one epoch whatever it was asked
    scores = result["test_predictions"]
    assert result["test_targets"] == list(range(len(scores)))
    assert all(0 <= s <= 1 for s in scores)
    assert result["metrics"]["dice"] == pytest.approx(np.mean(scores), abs=1e-5)
    with np.load(tmp_path / "predictions" / "masks.npz") as masks:
        assert masks["images"].shape == masks["truth"].shape == masks["predicted"].shape == (4, 32, 32)
        assert set(np.unique(masks["truth"])) <= {0, 1, 2, 3}


def test_the_generated_shapes_are_the_same_every_time_and_cover_every_class():
    module = template_module()
    images, masks = module["shapes"](20, 32)
    again, masks_again = module["shapes"](20, 32)
    assert np.array_equal(images, again) and np.array_equal(masks, masks_again)
    assert images.shape == (20, 1, 32, 32) and set(np.unique(masks)) == {0, 1, 2, 3}


def test_a_users_npz_file_of_images_and_labels(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = tmp_path / "mine.npz"
    np.savez(data, x=(digits.images * 15).astype(np.uint8), y=digits.target)  # 8-bit grey images
    (tmp_path / "work").mkdir()
    config = {
        "dataset": "npz",
        "data_path": str(data),
        "model": "cnn",
        "params": {"epochs": 4, "learning_rate": 0.01},
    }
    result = run_template(tmp_path / "work", monkeypatch, config)
    assert result["metrics"]["accuracy"] > 0.5


def test_a_npz_file_without_its_arrays_is_refused_with_their_names(tmp_path, monkeypatch):
    data = tmp_path / "bad.npz"
    np.savez(data, images=np.zeros((4, 8, 8)))
    with pytest.raises(SystemExit, match="arrays 'x' and 'y'"):
        run_template(tmp_path, monkeypatch, {"dataset": "npz", "data_path": str(data)})


@pytest.mark.parametrize(("dataset", "task", "metric"), [("breast_cancer", "classification", "roc_auc"),
                                                          ("diabetes", "regression", "rmse")])  # fmt: skip
def test_tables_train_an_mlp(tmp_path, monkeypatch, dataset, task, metric):
    config = {"dataset": dataset, "task": task, "metric": metric, "params": {"epochs": 5}}
    result = run_template(tmp_path, monkeypatch, config)
    assert metric in result["metrics"]
    if metric == "rmse":  # standardised targets: far better than predicting the mean (about 77)
        assert result["metrics"]["rmse"] < 70


def test_every_pytorch_family_has_a_registry_entry():
    module = template_module()
    assert domain.template_models("pytorch") <= set(module["MODELS"])


def test_an_image_folder_per_class(tmp_path, monkeypatch):
    """The ImageFolder layout: one folder of images per class (PNG files of mixed sizes and modes)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "digits-folder"
    for index, (image, label) in enumerate(zip(digits.images[:400], digits.target[:400], strict=True)):
        (root / f"class-{label}").mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray((image * 15).astype(np.uint8))
        if index % 7 == 3:  # another size and colour: resized to the first image's, made grey
            picture = picture.resize((16, 16)).convert("RGB")
        picture.save(root / f"class-{label}" / f"{index}.png")
    (tmp_path / "work").mkdir()
    config = {"dataset": "folder", "data_path": str(root), "model": "cnn",
              "params": {"epochs": 10, "learning_rate": 0.01}}  # fmt: skip
    result = run_template(tmp_path / "work", monkeypatch, config)
    assert result["split"]["test"] == 100 and result["metrics"]["accuracy"] > 0.5


def test_an_image_folder_for_segmentation_pairs_images_with_masks(tmp_path, monkeypatch):
    from PIL import Image

    module = template_module()
    images, masks = module["shapes"](80, 32)
    root = tmp_path / "scans"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        grey = (np.clip(image[0], 0, 1) * 255).astype(np.uint8)
        Image.fromarray(grey).save(root / "images" / f"{index}.png")
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{index}.png")
    (tmp_path / "work").mkdir()
    config = {"dataset": "folder", "data_path": str(root), "task": "segmentation", "metric": "iou",
              "model": "fcn", "params": {"epochs": 1}}  # fmt: skip
    result = run_template(tmp_path / "work", monkeypatch, config)
    assert 0 <= result["metrics"]["iou"] <= 1 and len(result["test_predictions"]) == 20
    (root / "masks" / "3.png").unlink()
    (tmp_path / "again").mkdir()
    with pytest.raises(SystemExit, match=r"no mask for: 3\.png"):
        run_template(tmp_path / "again", monkeypatch, config)


def test_the_edited_region_may_replace_the_optimiser_and_the_augmentation(tmp_path, monkeypatch):
    """What the coder writes between the markers comes after the template's build_optimizer and augment, so
    its own definitions of them are the ones training uses."""
    from airlab_coder.checking import with_model

    region = """
def build_model(params, input_shape, n_outputs):
    return MODELS["mlp"](input_shape, n_outputs, params)


def build_optimizer(params, model, epochs):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), None


def augment(inputs, targets, generator):
    flipped = torch.rand(len(inputs), generator=generator) < 0.5
    inputs = inputs.clone()
    inputs[flipped] = inputs[flipped].flip(-1)
    AUGMENTED.append(len(inputs))
    return inputs, targets


AUGMENTED = []
"""
    source = with_model(template_source("pytorch_train_template.py"), region)
    source = source.replace(
        '    print(json.dumps(result["metrics"]))', '    print("augmented", sum(AUGMENTED))'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOB_CONFIG", json.dumps({"params": {"epochs": 2}}))
    (tmp_path / "train.py").write_text(source)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runpy.run_path(str(tmp_path / "train.py"), run_name="__main__")
    result = json.loads((tmp_path / "result.json").read_text())
    assert printed.getvalue().strip() == f"augmented {2 * result['split']['train']}"
    assert result["metrics"]["accuracy"] > 0.5


def test_a_smoke_run_gives_the_network_a_full_training_batch_and_a_full_scoring_batch(tmp_path, monkeypatch):
    """A smoke run's subset is smaller than a scoring batch of the full run: the network still sees one of
    each size, so one too large for the memory limit fails the smoke run, not every trial."""
    from airlab_coder.checking import with_model

    region = """
class Recorded(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        SEEN.append((self.training, len(x)))
        return self.inner(x)


def build_model(params, input_shape, n_outputs):
    return Recorded(MODELS["cnn"](input_shape, n_outputs, params))


SEEN = []
"""
    source = with_model(template_source("pytorch_train_template.py"), region)
    source = source.replace('    print(json.dumps(result["metrics"]))', "    print(json.dumps(SEEN))")

    def batches(work: Path, config: dict) -> list[tuple[bool, int]]:
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.setenv("JOB_CONFIG", json.dumps(config))
        (work / "train.py").write_text(source)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            runpy.run_path(str(work / "train.py"), run_name="__main__")
        return [tuple(x) for x in json.loads(printed.getvalue().strip().splitlines()[-1])]

    params = {"epochs": 1, "channels": 4, "batch_size": 96}
    smoke = batches(tmp_path / "smoke", {"params": params, "max_samples": 60})
    subset = json.loads((tmp_path / "smoke" / "result.json").read_text())["split"]
    assert subset["train"] < 96 and subset["validation"] + subset["test"] < 256
    assert max(n for training, n in smoke if training) == 96
    assert max(n for training, n in smoke if not training) == 256
    # A full run's batches come from its data alone.
    full = batches(tmp_path / "full", {"params": params})
    assert max(n for training, n in full if training) == 96
    assert all(n <= 256 for _, n in full)
