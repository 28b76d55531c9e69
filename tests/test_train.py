"""catdog.training: the run folder, the feature cache (equivalence + reuse), fine-tuning, resume, config, calibration.

Tiny packs (32x32 images), a tiny saved-model backbone (conv + BN), 1-3 epochs.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.calibrate import apply_temperature, fit_temperature, log_loss
from catdog.data import load
from catdog.errors import ConfigError, DataError
from catdog.model.classifier import feature_extractor, get_backbone_layer
from catdog.model.feature_cache import cache_folder, ensure_split
from catdog.training import (TrainConfig, build_models, cached_dataset, class_weights, compile_model, resolve, train)
from fixtures.packed import build_pack


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def packed(work) -> str:
    build_pack(work / "packed", {"train": 16, "val": 8, "test": 4})
    return str(work / "packed")


@pytest.fixture(scope="module")
def tiny_backbone(work) -> str:
    """A saved feature extractor (raw 0..255 in, feature map out) with a conv and a BatchNormalization."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    keras.Model(inputs, x, name="tiny").save(work / "tiny.keras")
    return str(work / "tiny.keras")


def _config(work, packed, tiny_backbone, **kw) -> TrainConfig:
    base = dict(data=packed, backbone=tiny_backbone, image_size=32, epochs=2, batch_size=8, lr=0.01,
                runs_dir=str(work / "runs"), cache_dir=str(work / "cache"), patience=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained_run(work, packed, tiny_backbone) -> Path:
    return train(_config(work, packed, tiny_backbone, name="frozen", profile=True))


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _conv_kernel(model) -> np.ndarray:
    return get_backbone_layer(model).get_layer("conv").get_weights()[0]


def test_run_folder_follows_the_contract(trained_run, packed):
    for name in ("config.json", "best.keras", "last.keras", "metrics.csv", "summary.json", "calibration.json",
                 "train.log", "plots/loss.png", "plots/accuracy.png", "state.json"):
        assert (trained_run / name).is_file(), name
    config = json.loads((trained_run / "config.json").read_text())
    for key in ("catdog_version", "tensorflow_version", "keras_version", "seed", "data", "manifest_fingerprint",
                "classes", "backbone", "weights", "image_size", "resize"):
        assert key in config, key
    assert config["classes"] == ["cat", "dog"] and config["image_size"] == [32, 32]
    assert config["data"] == str(Path(packed).resolve()) and config["weights"] == "file"
    rows = _rows(trained_run)
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "1"), ("2", "1")]
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["phase1_mode"] == "cached" and summary["best_epoch"] in (1, 2)
    assert 0 <= summary["val_accuracy"] <= 1 and summary["val_log_loss"] > 0
    calibration = json.loads((trained_run / "calibration.json").read_text())
    assert calibration["temperature"] > 0
    assert calibration["val_log_loss_after"] <= calibration["val_log_loss_before"] + 1e-9
    assert abs(calibration["val_log_loss_before"] - summary["val_log_loss"]) < 1e-9
    # TensorBoard scalars and the --profile trace (keras.callbacks.TensorBoard: needs the tensorboard package,
    # which the test extra installs; tests/test_tensorboard.py reads them back)
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((trained_run / "tensorboard" / "phase1" / "validation").glob("events.out.tfevents.*"))
        assert list((trained_run / "tensorboard").rglob("*.xplane.pb"))


def test_best_keras_loads_as_the_contract_says(trained_run, packed):
    from catdog.run import load_run

    run = load_run(trained_run)
    assert run.model.input.shape == (None, 32, 32, 3) and run.model.output.shape == (None, 1)
    assert run.model.get_layer("probs").get_config()["activation"] == "sigmoid"
    images = np.concatenate([x.numpy() for x, _ in load(packed, "val", 32, batch_size=8)])
    probs = run.inference_model().predict_on_batch(images)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    summary = json.loads((trained_run / "summary.json").read_text())
    labels = np.concatenate([y.numpy() for _, y in load(packed, "val", 32, batch_size=8)])
    accuracy = float(np.mean((run.model.predict_on_batch(images)[:, 0] > 0.5) == labels))
    assert accuracy == pytest.approx(summary["val_accuracy"])  # summary's val metrics come from best.keras


def test_phase1_leaves_the_backbone_unchanged(trained_run, tiny_backbone):
    original = keras.saving.load_model(tiny_backbone).get_layer("conv").get_weights()[0]
    for name in ("best.keras", "last.keras"):
        np.testing.assert_array_equal(_conv_kernel(keras.saving.load_model(trained_run / name)), original)


def test_second_run_reuses_the_feature_cache(trained_run, work, packed, tiny_backbone):
    first = json.loads((trained_run / "summary.json").read_text())["cache"]
    assert first["computed"] and not first["reused"]
    files = sorted(Path(first["folder"]).glob("*.npy"))
    assert {f.name for f in files} == {"train-plain.npy", "train-labels.npy", "val-plain.npy", "val-labels.npy"}
    mtimes = [f.stat().st_mtime_ns for f in files]
    run = train(_config(work, packed, tiny_backbone, name="again", epochs=1))
    second = json.loads((run / "summary.json").read_text())["cache"]
    assert second["reused"] and second["computed"] == [] and second["folder"] == first["folder"]
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    features = np.load(Path(first["folder"]) / "train-plain.npy", mmap_mode="r")
    assert isinstance(features, np.memmap) and features.shape == (16, 6)


def test_head_on_cached_features_equals_frozen_backbone_on_the_fly(work, packed, tiny_backbone):
    cfg = resolve(_config(work, packed, tiny_backbone, dropout=0.0, schedule="constant", l2=1e-3, batch_size=4))
    keras.utils.set_random_seed(3)
    backbone, head, classifier = build_models(cfg, 2)
    initial = head.get_weights()
    # on the fly: images through the frozen backbone, reader order (no shuffle)
    compile_model(classifier, 0.01, 2)
    images = load(cfg.data, "train", 32, batch_size=4).map(lambda x, y: (x, keras.ops.reshape(y, (-1, 1))))
    fly = classifier.fit(images, epochs=2, shuffle=False, verbose=0).history["loss"]
    fly_weights = [w.copy() for w in head.get_weights()]  # the classifier trained the head's own layers
    # cached: same initial weights, same order
    head.set_weights(initial)
    compile_model(head, 0.01, 2)
    cache = ensure_split(cache_folder(work / "eqcache", {"k": 1}), {"k": 1}, feature_extractor(backbone, 32),
                         cfg.data, "train", 32, batch_size=4)
    cached = head.fit(cached_dataset(cache, 4, 2, shuffle=False, seed=0), epochs=2, verbose=0).history["loss"]
    assert np.abs(fly_weights[0] - initial[0]).max() > 0.05  # it did train, far beyond the tolerance below
    # Equal up to float32 round-off: the features are bit-identical, the two training graphs differ in
    # fusion (~1e-5 after one SGD epoch), and Adam's normalised steps amplify that a little.
    np.testing.assert_allclose(cached, fly, rtol=1e-3)
    for a, b in zip(head.get_weights(), fly_weights):
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_interrupted_run_resumes_then_fine_tunes_the_backbone(work, packed, tiny_backbone):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    cfg = _config(work, packed, tiny_backbone, name="resumed", epochs=3, fine_tune_epochs=1, unfreeze=1.0,
                  fine_tune_lr=0.05, cache_views=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Interrupt()])
    run_dir = work / "runs" / "resumed"
    assert [r["epoch"] for r in _rows(run_dir)] == ["1", "2"]  # a resumable folder: two epochs recorded
    assert json.loads((run_dir / "state.json").read_text())["phase1"]["epochs_done"] == 2
    with pytest.raises(ConfigError, match="differs.*lr=0.5"):
        train(TrainConfig.from_dict({**cfg.to_dict(), "lr": 0.5}), resume=run_dir)
    assert train(resume=run_dir) == run_dir
    rows = _rows(run_dir)
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "1"), ("2", "1"), ("3", "1"), ("4", "2")]
    # phase 2 trained the (unfrozen) backbone; the BatchNormalization layer stayed frozen
    original = keras.saving.load_model(tiny_backbone)
    last = keras.saving.load_model(run_dir / "last.keras")
    assert not np.allclose(_conv_kernel(last), original.get_layer("conv").get_weights()[0])
    for a, b in zip(get_backbone_layer(last).get_layer("bn").get_weights(), original.get_layer("bn").get_weights()):
        np.testing.assert_array_equal(a, b)
    cache = json.loads((run_dir / "summary.json").read_text())["cache"]
    assert len(list(Path(cache["folder"]).glob("train-aug-*-1.npy"))) == 1  # one augmented view cached


def test_interrupted_fine_tuning_resumes_with_its_optimizer_state(work, packed, tiny_backbone):
    class InterruptSecondFit(keras.callbacks.Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            InterruptSecondFit.fits += 1

        def on_epoch_begin(self, epoch, logs=None):
            if InterruptSecondFit.fits == 2 and epoch == 1:  # phase 2, its second epoch
                raise KeyboardInterrupt

    cfg = _config(work, packed, tiny_backbone, name="resumed2", epochs=1, fine_tune_epochs=2, unfreeze=0.5,
                  fine_tune_lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[InterruptSecondFit()])
    run_dir = work / "runs" / "resumed2"
    steps = int(keras.saving.load_model(run_dir / "last.keras").optimizer.iterations.numpy())
    assert steps == 2  # 16 images / batch 8: one phase-2 epoch recorded
    train(resume=run_dir)
    assert [(r["epoch"], r["phase"]) for r in _rows(run_dir)] == [("1", "1"), ("2", "2"), ("3", "2")]
    assert int(keras.saving.load_model(run_dir / "last.keras").optimizer.iterations.numpy()) == 4


def test_three_classes_without_cache(work, tiny_backbone):
    build_pack(work / "packed3", {"train": 12, "val": 6}, classes=("bird", "cat", "dog"))
    run = train(TrainConfig(data=str(work / "packed3"), backbone=tiny_backbone, image_size=32, epochs=1,
                            batch_size=6, cache=False, runs_dir=str(work / "runs"), name="three"))
    model = keras.saving.load_model(run / "best.keras")
    assert model.output.shape == (None, 3)
    assert model.get_layer("probs").get_config()["activation"] == "softmax"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["phase1_mode"] == "frozen" and summary["classes"] == ["bird", "cat", "dog"]
    assert (run / "calibration.json").is_file() and len(_rows(run)) == 1


def test_a_backbone_file_with_a_fixed_input_size_sets_the_default_and_refuses_another(work, packed):
    """A feature extractor saved with Input((40, 40, 3)): 224 was the default, and training crashed with a
    58-line ValueError; --image-size 64 the same."""
    from catdog.training.config import resolve

    keras.utils.set_random_seed(2)
    inputs = keras.Input((40, 40, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2)(inputs), name="fixed").save(work / "fixed40.keras")
    fixed = str(work / "fixed40.keras")
    assert resolve(TrainConfig(data=packed, backbone=fixed)).image_size == (40, 40)
    with pytest.raises(ConfigError, match="takes 40x40 images only.*leave --image-size out or pass 40"):
        resolve(TrainConfig(data=packed, backbone=fixed, image_size=64))
    run = train(TrainConfig(data=packed, backbone=fixed, epochs=1, batch_size=8, runs_dir=str(work / "runs"),
                            cache_dir=str(work / "cache"), name="fixed"))
    assert json.loads((run / "config.json").read_text())["image_size"] == [40, 40]


def test_missing_val_split_is_a_clear_error(work, tiny_backbone):
    build_pack(work / "noval", {"train": 6})
    with pytest.raises(DataError, match="no 'val' split"):
        train(TrainConfig(data=str(work / "noval"), backbone=tiny_backbone, runs_dir=str(work / "runs")))


def test_config_round_trip_and_strictness(tmp_path):
    cfg = TrainConfig(data="packed", backbone="vgg16", image_size=(64, 48), unfreeze=12, brightness=0.0)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.unfreeze, int) and again.image_size == (64, 48)
    assert TrainConfig.from_dict({"data": "p", "unfreeze": 0.25}).unfreeze == 0.25
    with pytest.raises(ConfigError, match="unknown train config key.*learning_rate"):
        TrainConfig.from_dict({"data": "p", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="epochs: expected"):
        TrainConfig(data="p", epochs="3")
    with pytest.raises(ConfigError, match="--monitor must be one of val_log_loss"):
        TrainConfig(data="p", monitor="val_auc")
    with pytest.raises(ConfigError, match="--unfreeze fraction"):
        TrainConfig(data="p", unfreeze=1.5)
    with pytest.raises(ConfigError, match="brightness"):
        TrainConfig(data="p", brightness=3.0)
    with pytest.raises(ConfigError, match="too small for backbone vgg16"):
        resolve(TrainConfig(data=str(tmp_path), backbone="vgg16", weights="none", image_size=16))


def test_class_weights_only_when_imbalanced():
    manifest = {"classes": ["cat", "dog"], "splits": {"train": {"class_counts": {"cat": 90, "dog": 10}}}}
    weights = class_weights(TrainConfig(data="p"), manifest)
    assert weights == pytest.approx({0: 100 / 180, 1: 100 / 20})
    assert class_weights(TrainConfig(data="p", class_weights="none"), manifest) is None
    balanced = {"classes": ["cat", "dog"], "splits": {"train": {"class_counts": {"cat": 50, "dog": 55}}}}
    assert class_weights(TrainConfig(data="p"), balanced) is None


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, 4000)
    labels = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z / 2.5))).astype(int)  # true T = 2.5
    t = fit_temperature(z[:, None], labels)
    assert t == pytest.approx(2.5, rel=0.1)
    assert log_loss(z, labels, t) < log_loss(z, labels, 1.0)
    z3 = rng.normal(0, 3, (3000, 3))
    p = apply_temperature(z3, 0.5)
    labels3 = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(z3, labels3) == pytest.approx(0.5, rel=0.1)
    np.testing.assert_allclose(apply_temperature(z3, 1.0).sum(1), 1.0)


def test_an_error_free_validation_split_does_not_push_the_temperature_to_zero():
    """A small split the model gets all right: the NLL alone falls as T -> 0 (the minimum was T = 0.05, every
    probability 0 or 1); the prior keeps T near 1, so unseen photos with a few errors lose nothing."""
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(6, 1.5, 31), rng.normal(-6, 1.5, 31)])
    labels = np.r_[np.ones(31), np.zeros(31)].astype(int)
    assert fit_temperature(z, labels) >= 0.8
    unseen = np.concatenate([rng.normal(6, 1.5, 500), rng.normal(-6, 1.5, 500)])  # ~0.03% errors
    unseen_labels = np.r_[np.ones(500), np.zeros(500)].astype(int)
    unseen_labels[:3] = 0  # three confident mistakes
    t = fit_temperature(z, labels)
    assert log_loss(unseen, unseen_labels, t) < 1.5 * log_loss(unseen, unseen_labels, 1.0)


@pytest.mark.slow
def test_lite0_on_a_few_hundred_shared_photos(shared_dir, tmp_path):
    """Integration: the shared ImageNet EfficientNet-Lite0 on 400 real photos reaches >= 0.9 val accuracy."""
    weights = shared_dir / "weights" / "efficientnet_lite0_imagenet_notop.keras"
    if not weights.is_file():
        pytest.skip("shared Lite0 weights absent")
    source = tmp_path / "src"
    source.mkdir()
    for kind in ("cat", "dog"):
        for i in range(1, 201):
            shutil.copy(shared_dir / "data" / "dogs-vs-cats" / "train" / f"{kind}.{i}.jpg", source)
    from catdog.data.pack import pack

    pack(source, tmp_path / "packed", val_fraction=0.25, workers=1, progress=False)
    run = train(TrainConfig(data=str(tmp_path / "packed"), backbone=str(weights), image_size=160, epochs=8,
                            batch_size=32, runs_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache")))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_train"] + summary["num_val"] == 400
    assert summary["val_accuracy"] >= 0.9, summary


def test_feature_caching_and_epochs_print_progress_lines_when_stderr_is_not_a_terminal(work, packed, tiny_backbone,
                                                                                        capsys):
    """Issue 9: nobody watches a CI log; caching and every epoch still say how far they are (see catdog.progress)."""
    import re

    train(_config(work, packed, tiny_backbone, name="logged", cache_dir=str(work / "cache-logged"), epochs=2,
                  batch_size=5))
    err = capsys.readouterr().err
    line = r"{}: {n}/{n} images \(100%\), [\d,]+ images/s, done in \d+:\d\d:\d\d"
    assert re.search(line.format("train plain", n=16), err), err  # 16 train records cached, once
    assert re.search(line.format("val plain", n=8), err), err
    for epoch in (1, 2):  # 16 cached rows, batch 5: 4 steps (the last of 1 image) = 16 images, not 20
        assert len(re.findall(line.format(f"phase 1 epoch {epoch}/2", n=16), err)) == 1, err


def test_phase1_defaults_follow_what_phase1_trains_on(tmp_path):
    """Issue 10: the tuned head defaults (60 epochs, L2 1e-3, patience 10) are for the head on cached features;
    a network trained on images (small-cnn from scratch, --no-cache, several workers) keeps 10 / 1e-4 / 3."""
    base = dict(data=str(tmp_path), weights="none")
    cached = resolve(TrainConfig(backbone="mobilenetv3small", **base))
    assert (cached.epochs, cached.l2, cached.patience) == (60, 1e-3, 10)
    for cfg in (TrainConfig(backbone="small-cnn", **base),
                TrainConfig(backbone="mobilenetv3small", cache=False, **base),
                TrainConfig(backbone="mobilenetv3small", strategy="multiworker", **base)):
        resolved = resolve(cfg)
        assert (resolved.epochs, resolved.l2, resolved.patience) == (10, 1e-4, 3), cfg
    given = resolve(TrainConfig(backbone="small-cnn", epochs=4, l2=0.0, patience=0, **base))
    assert (given.epochs, given.l2, given.patience) == (4, 0.0, 0)


@pytest.mark.parametrize("gpu", [False, True])
def test_training_images_stream_untuned_on_a_cpu_and_autotuned_on_a_gpu(work, packed, tiny_backbone,
                                                                         monkeypatch, gpu):
    """On a CPU the autotuner made some passes run at one core's speed (docs/benchmarks.md); on a GPU it stays."""
    from catdog import runtime
    from catdog.training import image_dataset

    monkeypatch.setattr(runtime, "gpu_present", lambda: gpu)
    cfg = _config(work, packed, tiny_backbone)
    train_ds = image_dataset(cfg, "train", 2, training=True)
    assert (train_ds.options().autotune.enabled is False) == (not gpu)
    assert image_dataset(cfg, "val", 2, training=False).options().autotune.enabled is False
    images, labels = next(iter(train_ds))
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8, 1)
