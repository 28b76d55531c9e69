"""Benchmark the CPU runtime: default pack + train, feature caching and predict per runtime, against TensorFlow.

    $ python bench/runtime_bench.py                    # everything below, on the 5,000 shared photos
    $ python bench/runtime_bench.py --skip-train --onnx
    $ python bench/runtime_bench.py --skip-train --parts autotune   # part 5 alone, on the pack part 1 left
    $ python bench/runtime_bench.py --skip-train --parts ceiling    # part 6 alone, with the run part 1 left

In one run (same machine, same load):
1. `default`: `catdog pack` of the photos + `catdog train PACKED --backbone LITE0` with no other option
   (fresh feature cache; the converted backbone is built in the run unless --warm-models), wall times and
   the val accuracy / log loss it reaches, --repeat times from scratch (this machine's speed drifts by
   minutes: the median is the figure);
2. feature caching images/s per runtime (tensorflow, litert) over the whole pack (train + val, plain view),
   each into a fresh cache folder, the decode pipeline included;
3. `predict` images/s per runtime on the photos (files -> decode -> model -> CSV), with the trained run,
   against the classifier's preloaded rates on both runtimes measured right before and after it;
4. for Lite0 (features and the trained classifier) and for efficientnetv2b0 / mobilenetv3small classifiers
   with random weights (no download): images/s on PRELOADED decoded images of TensorFlow's compiled forward
   pass (tf.function, batch 32) and of LiteRT (and ONNX Runtime with --onnx), in alternating rounds so
   background load hits all alike; the ratios to TensorFlow are the figures;
5. only with `--parts autotune`: the val split through the LiteRT feature extractor, passes alternating
   between catdog's pipeline (tf.data's autotuner off) and the same with the autotuner on, each pass's
   images/s and cores in use (the autotuner made 25 of 64 passes run on one core's worth of CPU);
6. only with `--parts ceiling`: how close any input pipeline can come to LiteRT's preloaded rate on this
   machine: predict's own streaming loop over the 1,000 `test1` photos with three decode functions in
   alternating rounds (catdog's; the bare TensorFlow JPEG decode + bilinear resize; none: each file is read
   and yields zeros), each against the classifier's preloaded LiteRT rate right before and after it, with the
   share of the time the model is busy (the rest: waiting for input) and its speed while the pipeline shares
   the cores.
Writes --work/runtime_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def load_photos(source: Path, count: int, size: int = 224) -> "np.ndarray":
    """`count` photos decoded and resized as catdog does, float32 0..255 (the preloaded input)."""
    import numpy as np
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    files = sorted(source.glob("*.jpg"))[:count]
    return np.stack([decode_and_resize(tf.io.read_file(str(f)), size, "squash").numpy() for f in files])


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of this process (resource.RUSAGE_SELF) or of its finished children."""
    import resource

    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def rates(fns: dict, images, rounds: int, batch: int = 32) -> dict:
    """images/s of each callable over `images` in batches, median of alternating rounds (after a warm-up)."""
    for fn in fns.values():
        fn(images[:batch])
    out = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                fn(images[i : i + batch])
            out[name].append(len(images) / (time.perf_counter() - start))
    return {name: round(statistics.median(v), 1) for name, v in out.items()}


def between_rates(adjacent: dict, images, work) -> dict:
    """Run `work()` between two measurements of the preloaded rates of `adjacent` (this machine's speed drifts
    by minutes, so ratios are taken within that window): its result, wall seconds, cores in use (CPU s / wall),
    and the rates before, after and their mean ("preloaded")."""
    import resource

    before = rates(adjacent, images, 1)
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    result = work()
    seconds = time.perf_counter() - start
    cores = (cpu_seconds(resource.RUSAGE_SELF) - cpu) / seconds
    after = rates(adjacent, images, 1)
    return {"result": result, "seconds": seconds, "cores": cores, "before": before, "after": after,
            "preloaded": {k: round((before[k] + after[k]) / 2, 1) for k in before}}


def onnx_runtime(model):
    """ONNX Runtime session (via tf2onnx) as a callable, or None when tf2onnx / onnxruntime are missing."""
    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        return None
    from catdog.runtime import cpu_threads

    spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="images")
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda x: model(x, training=False)), input_signature=[spec],
                                             opset=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def compare(label: str, model, images, work: Path, rounds: int, onnx: bool, invoke_batches=(4,)) -> dict:
    """Preloaded-image rates of TF compiled / LiteRT (/ ORT) for one model, with the parity of each."""
    import numpy as np

    from catdog import runtime

    fns = {"tensorflow": runtime.TensorFlowRuntime(model)}
    start = time.perf_counter()
    lite = runtime.build_litert(model, work / "models", label)
    build_s = time.perf_counter() - start
    for b in invoke_batches:
        fns[f"litert_b{b}"] = runtime.LiteRTRuntime(lite.path, invoke_batch=b)
    notes = {}
    if onnx:
        try:
            ort = onnx_runtime(model)
            ort(images[:1])
            if ort is not None:
                fns["onnxruntime"] = ort
        except Exception as e:  # noqa: BLE001 - a model tf2onnx cannot export is a result, not a crash
            notes["onnxruntime"] = f"not measured: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    reference = fns["tensorflow"](images[:8])
    parity = {name: float(np.max(np.abs(np.asarray(fn(images[:8])) - reference))) for name, fn in fns.items()}
    result = {"images_per_s": rates(fns, images, rounds), "max_abs_diff_vs_tf": parity, "litert_build_s": round(build_s, 1),
              **({"notes": notes} if notes else {})}
    tf_rate = result["images_per_s"]["tensorflow"]
    result["ratio_vs_tf"] = {k: round(v / tf_rate, 2) for k, v in result["images_per_s"].items()}
    print(f"{label}: {result['images_per_s']} ratio {result['ratio_vs_tf']} parity {parity}", flush=True)
    return result


def classifier_for(backbone, size: int = 224, seed: int = 0):
    """backbone -> GAP -> Dense logits -> calibrated probabilities, as a run folder's inference model is."""
    import keras

    from catdog.run import calibrated_model

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = backbone(inputs, training=False)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(1, name="logits")(x)
    x = keras.layers.Activation("sigmoid", name="probs")(x)
    return calibrated_model(keras.Model(inputs, x), 2, 1.0)


def part1_models(work: Path) -> Path:
    """Where part 1's `catdog train` left the converted backbone (its conversion is timed there)."""
    return work / "cache" / "catdog" / "features" / "models"


def cache_rate(packed: Path, backbone_path: str, work: Path, name: str, images) -> dict:
    """Feature caching (train + val plain view) through runtime `name` into a fresh cache: images/s, with the
    preloaded rates of both runtimes measured right before and after it (load on a shared machine drifts)."""
    import keras

    from catdog import runtime
    from catdog.data import manifest as manifest_lib
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import ensure_split

    extractor = feature_extractor(keras.saving.load_model(backbone_path, compile=False), 224)
    folder = work / f"cache-{name}" / "features"
    shutil.rmtree(folder.parent, ignore_errors=True)
    models = part1_models(work)
    shutil.copytree(models, folder.parent / "models", dirs_exist_ok=True)
    adjacent = {"tensorflow": runtime.TensorFlowRuntime(extractor),
                "litert": runtime.build_litert(extractor, folder.parent / "models", Path(backbone_path).stem)}
    manifest = manifest_lib.read_manifest(str(packed))
    rows = sum(manifest["splits"][s]["num_examples"] for s in ("train", "val"))

    def cache_both():
        for split in ("train", "val"):
            ensure_split(folder, {}, extractor, str(packed), split, 224, runtime=name, show_progress=False,
                         label=Path(backbone_path).stem)

    w = between_rates(adjacent, images, cache_both)
    seconds, preloaded = w["seconds"], w["preloaded"]
    print(f"feature caching, {name}: {rows} images in {seconds:.1f} s = {rows / seconds:.1f} images/s, "
          f"{w['cores']:.2f} cores in use; preloaded around it {preloaded} (before {w['before']}, after "
          f"{w['after']}); load {os.getloadavg()[0]:.1f}", flush=True)
    return {"images": rows, "seconds": round(seconds, 1), "images_per_s": round(rows / seconds, 1),
            "cores": round(w["cores"], 2), "preloaded_around": preloaded,
            "vs_tf_preloaded": round(rows / seconds / preloaded["tensorflow"], 2),
            "vs_own_preloaded": round(rows / seconds / preloaded[name], 2)}


def autotune_passes(packed: Path, backbone_path: str, work: Path, rounds: int) -> dict:
    """The val split through the LiteRT feature extractor, passes alternating between catdog's pipeline
    (`untuned`: tf.data's autotuner off) and the same pipeline with the autotuner on: images/s and cores in
    use (CPU s / wall) of every pass. A pass under 1.3 cores ran on one core's worth of CPU."""
    import resource

    import keras
    import tensorflow as tf

    from catdog import runtime
    from catdog.data import load
    from catdog.model.classifier import feature_extractor

    extractor = feature_extractor(keras.saving.load_model(backbone_path, compile=False), 224)
    extract = runtime.build_litert(extractor, part1_models(work), Path(backbone_path).stem)  # loads part 1's file

    def tuned(dataset):
        options = tf.data.Options()
        options.autotune.enabled = True
        return dataset.with_options(options)

    pipelines = {"untuned": lambda: load(str(packed), "val", 224),
                 "autotuner on": lambda: tuned(load(str(packed), "val", 224))}
    passes = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, pipeline in pipelines.items():
            start, cpu, n = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF), 0
            for images, labels in pipeline():
                extract(images.numpy())
                n += len(labels)
            seconds = time.perf_counter() - start
            passes[name].append({"images_per_s": round(n / seconds, 1),
                                 "cores": round((cpu_seconds(resource.RUSAGE_SELF) - cpu) / seconds, 2)})
    result = {}
    for name, runs in passes.items():
        one_core = sum(r["cores"] < 1.3 for r in runs)
        result[name] = {"passes": runs, "one_core_passes": one_core,
                        "median_images_per_s": statistics.median(r["images_per_s"] for r in runs)}
        print(f"val features through LiteRT, {name}: {one_core} of {len(runs)} passes on one core; "
              + ", ".join(f"{r['images_per_s']}/s {r['cores']}c" for r in runs), flush=True)
    return result


def predict_rate(run_dir: Path, source: Path, work: Path, name: str, images) -> dict:
    """`catdog predict RUN SOURCE --runtime NAME`: the streaming rate it reports (read + decode + model, after
    the model is loaded; the converted model is built beforehand, as any run after the first finds it), the
    wall time of the whole call, and the classifier's preloaded rates on both runtimes measured right before
    and after it (this machine's speed drifts by minutes: the ratios are taken within that window)."""
    from catdog import runtime
    from catdog.prediction import predict
    from catdog.predictors import load_predictor
    from catdog.run import load_run

    load_predictor(str(run_dir), runtime=name)  # converts into RUN/litert once (reused below)
    classifier = load_run(run_dir).inference_model()
    adjacent = {"tensorflow": runtime.TensorFlowRuntime(classifier),
                "litert": runtime.build_litert(classifier, work / "models", "classifier")}
    out = work / f"submission-{name}.csv"
    w = between_rates(adjacent, images,
                      lambda: predict(str(run_dir), [str(source)], str(out), runtime=name, progress=False))
    summary, seconds, preloaded = w["result"], w["seconds"], w["preloaded"]
    rate = summary.images_per_second
    print(f"predict, {name}: {summary.rows} images, streaming {rate:.1f} images/s, wall {seconds:.1f} s, "
          f"{w['cores']:.2f} cores in use; classifier preloaded around it {preloaded} (before {w['before']}, "
          f"after {w['after']})", flush=True)
    return {"images": summary.rows, "images_per_s": round(rate, 1), "wall_s": round(seconds, 1),
            "cores": round(w["cores"], 2), "wall_images_per_s": round(summary.rows / seconds, 1),
            "preloaded_around": preloaded, "vs_tf_preloaded": round(rate / preloaded["tensorflow"], 2),
            "vs_own_preloaded": round(rate / preloaded[name], 2)}


def default_run(args, source: Path, work: Path, index: int) -> dict:
    """`catdog pack` + `catdog train PACKED --backbone LITE0`, no other option, as a user runs them, into a
    fresh folder (caches under it through XDG_CACHE_HOME: nothing converted or cached beforehand unless
    --warm-models). Wall time of each command and what the run reached."""
    import subprocess

    import keras

    from catdog.model.classifier import feature_extractor

    folder = work / (f"default-{index}" if index else ".")
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(folder / "packed", ignore_errors=True)
    shutil.rmtree(folder / "runs", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache.resolve())}
    catdog = [sys.executable, "-m", "catdog"]
    if args.warm_models:
        from catdog.runtime import build_litert

        extractor = feature_extractor(keras.saving.load_model(args.backbone, compile=False), 224)
        build_litert(extractor, cache / "catdog" / "features" / "models", Path(args.backbone).stem)
    import resource

    t0, c0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run([*catdog, "pack", str(source.resolve()), "--out", "packed"], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pack_s, c1 = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN)
    t1 = time.perf_counter()
    subprocess.run([*catdog, "train", "packed", "--backbone", str(Path(args.backbone).resolve())], cwd=folder, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    train_s, c2 = time.perf_counter() - t1, cpu_seconds(resource.RUSAGE_CHILDREN)
    run_dir = next((folder / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    # cores in use on average (CPU seconds / wall): this VM's kernel (sched_vcpu_pack) at times packs a
    # process's threads onto one of the two vCPUs (when the host is contended), and a run takes up to twice as long
    result = {"pack_s": round(pack_s, 1), "train_s": round(train_s, 1), "pack_plus_train_s": round(pack_s + train_s, 1),
              "pack_cores": round((c1 - c0) / pack_s, 2), "train_cores": round((c2 - c1) / train_s, 2),
              "warm_models": args.warm_models, "cache_s": summary["timings"]["cache_seconds"],
              "val_accuracy": summary["val_accuracy"], "val_log_loss": summary["val_log_loss"],
              "val_log_loss_calibrated": summary["val_log_loss_calibrated"],
              "epochs_run": summary["epochs_run"]["phase1"], "phase1_s": summary["timings"]["phase1_seconds"],
              "num_val": summary["num_val"], "load_average_after": os.getloadavg(), "run_dir": str(run_dir)}
    print(f"default pack + train #{index + 1}: {result}", flush=True)
    return result


def pipeline_ceiling(run_dir: Path, photos: Path, images, rounds: int) -> dict:
    """Part 6: predict's streaming loop (catdog.prediction.run_predictions: files -> tf.data map -> batches ->
    LiteRT) with catdog's decode function, the bare TensorFlow decode + resize, and no decode at all, in
    alternating rounds; each rate against the classifier's preloaded LiteRT rate measured around it. The
    no-decode ratio is the most any decode can reach with the model on the same cores."""
    import tensorflow as tf

    from catdog import prediction
    from catdog.data.decode import _bilinear_corner_aligned
    from catdog.inputs import collect_inputs
    from catdog.predictors import load_predictor

    predictor = load_predictor(str(run_dir), runtime="litert")
    inputs = collect_inputs([str(photos)])

    def bare(size, mode):
        def decode(image_id, data, orientation):
            pixels = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
            return image_id, tf.constant(1), _bilinear_corner_aligned(pixels, size)  # catdog's resize, alone
        return decode

    def none(size, mode):
        def decode(image_id, data, orientation):  # the bytes are read (the length keeps the read alive)
            return image_id, tf.constant(1), tf.zeros([*size, 3]) * tf.cast(tf.strings.length(data), tf.float32)
        return decode

    class Timed:
        """The predictor, with the time spent in its model calls (the 1-image warm-up call left out)."""

        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return getattr(predictor, name)

        def predict_images(self, batch):
            start = time.perf_counter()
            out = predictor.predict_images(batch)
            self.calls.append((len(batch), time.perf_counter() - start))
            return out

    catdog_decoder = prediction.stream_decoder
    decoders = {"catdog": catdog_decoder, "bare TensorFlow decode + resize": bare, "no decode": none}
    passes = {name: [] for name in decoders}
    try:
        for _ in range(rounds):
            for name, decoder in decoders.items():
                prediction.stream_decoder, timed = decoder, Timed()
                w = between_rates({"litert": predictor.predict_images}, images,
                                  lambda: prediction.run_predictions(timed, inputs, progress=False))
                summary, preloaded = w["result"], w["preloaded"]["litert"]
                rate, calls = summary.images_per_second, timed.calls[1:]
                model_seconds = sum(seconds for _, seconds in calls)
                passes[name].append({
                    "images_per_s": round(rate, 1), "preloaded": preloaded, "ratio": round(rate / preloaded, 3),
                    "cores": round(w["cores"], 2),
                    # the share of the stream's time spent in model calls (the rest: waiting for input, the loop)
                    "model_busy": round(model_seconds / summary.seconds, 3),
                    # the model's own speed inside the stream against its speed with the cores to itself
                    "model_vs_preloaded": round(sum(n for n, _ in calls) / model_seconds / preloaded, 3)})
    finally:
        prediction.stream_decoder = catdog_decoder
    result = {}
    for name, runs in passes.items():
        result[name] = {"passes": runs, **{f"median_{k}": statistics.median(r[k] for r in runs)
                                           for k in ("ratio", "model_busy", "model_vs_preloaded")}}
        print(f"predict's stream, {name}: median {result[name]['median_ratio']:.3f}x LiteRT's preloaded rate, model "
              f"busy {result[name]['median_model_busy']:.3f} of the time at {result[name]['median_model_vs_preloaded']:.3f}x"
              f" its preloaded speed; " + ", ".join(f"{r['ratio']:.3f} ({r['images_per_s']}/s, {r['cores']}c)" for r in runs),
              flush=True)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(SHARED / "data" / "dogs-vs-cats" / "train"))
    p.add_argument("--backbone", default=str(SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras"))
    p.add_argument("--work", default="bench-work/runtime", help="pack, caches, runs go here (wiped)")
    p.add_argument("--preloaded", type=int, default=256, help="photos decoded up front for the model-only rates")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (needs tf2onnx + onnxruntime)")
    p.add_argument("--warm-models", action="store_true", help="convert the backbone before the timed train")
    p.add_argument("--repeat", type=int, default=3, help="default pack + train runs, each from scratch (the median counts)")
    p.add_argument("--skip-train", action="store_true", help="reuse --work's pack and run (parts 2-4 only)")
    p.add_argument("--parts", nargs="+", default=["preloaded", "caching", "predict"],
                   help="which of parts 2-4 to run (with --skip-train, to re-measure one of them); caching-litert: LiteRT "
                        "only; autotune: part 5; ceiling: part 6")
    p.add_argument("--autotune-rounds", type=int, default=8, help="alternating passes of each pipeline in part 5")
    p.add_argument("--ceiling-rounds", type=int, default=5, help="alternating rounds of the three decodes in part 6")
    p.add_argument("--ceiling-photos", default=str(SHARED / "data" / "dogs-vs-cats" / "test1"),
                   help="the photos predict streams in part 6")
    args = p.parse_args()
    source, work = Path(args.source), Path(args.work)
    if not source.is_dir() or not Path(args.backbone).is_file():
        print(f"missing {source} or {args.backbone}", file=sys.stderr)
        return 2
    import keras

    result = {"machine": "2-core x86_64 CPU, 24 GB, no GPU", "load_average_start": os.getloadavg()}
    packed = work / "packed"
    if not args.skip_train:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        runs = [default_run(args, source, work, i) for i in range(args.repeat)]  # run 1 in work/ itself
        totals = sorted(r["pack_plus_train_s"] for r in runs)
        result["default"] = {**runs[0], "runs": runs, "pack_plus_train_s_all": [r["pack_plus_train_s"] for r in runs],
                             "pack_plus_train_s_median": statistics.median(totals)}
        print(f"default pack + train: {result['default']['pack_plus_train_s_all']} s, median "
              f"{result['default']['pack_plus_train_s_median']} s", flush=True)
    runs = sorted((work / "runs").iterdir()) if (work / "runs").is_dir() else []
    run_dir = runs[0] if runs else work / "runs" / "missing"

    images = load_photos(source, args.preloaded)
    backbone = keras.saving.load_model(args.backbone, compile=False)
    if "preloaded" in args.parts:
        result["preloaded"] = preloaded_rates(args, images, backbone, run_dir, work)
    if "caching" in args.parts or "caching-litert" in args.parts:
        names = ("litert", "tensorflow") if "caching" in args.parts else ("litert",)
        result["feature_caching"] = {name: cache_rate(packed, args.backbone, work, name, images[:128]) for name in names}
    if "autotune" in args.parts:
        result["autotune"] = autotune_passes(packed, args.backbone, work, args.autotune_rounds)
    if "ceiling" in args.parts and run_dir.is_dir():
        result["ceiling"] = pipeline_ceiling(run_dir, Path(args.ceiling_photos), images[:128], args.ceiling_rounds)
    if "predict" in args.parts and run_dir.is_dir():
        result["predict"] = {name: predict_rate(run_dir, source, work, name, images[:128])
                             for name in ("tensorflow", "litert")}
    result["load_average_end"] = os.getloadavg()
    name = "runtime_bench.json" if args.parts == ["preloaded", "caching", "predict"] else f"runtime_bench-{'-'.join(args.parts)}.json"
    (work / name).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "preloaded"}, indent=2))
    print(f"details: {work / name}")
    return 0


def preloaded_rates(args, images, backbone, run_dir: Path, work: Path) -> dict:
    """Part 4: model-only rates on preloaded images for Lite0 (features, trained classifier) and two
    architectures with random weights."""
    import keras

    from catdog.model.classifier import feature_extractor

    preloaded = {"lite0_features": compare("lite0-features", feature_extractor(backbone, 224), images, work,
                                           args.rounds, args.onnx, invoke_batches=(1, 4, 8, 32))}
    if run_dir.is_dir():
        from catdog.run import load_run

        preloaded["lite0_classifier"] = compare("lite0-classifier", load_run(run_dir).inference_model(), images, work,
                                                args.rounds, args.onnx)
    for name in ("efficientnetv2b0", "mobilenetv3small"):
        from catdog.model.classifier import build_backbone
        from catdog.model.registry import get_backbone

        model = classifier_for(build_backbone(get_backbone(name), "none", 224))
        preloaded[name] = compare(name, model, images, work, args.rounds, args.onnx)
        keras.backend.clear_session()
    return preloaded


if __name__ == "__main__":
    sys.exit(main())
