"""Train a classifier on a packed folder: frozen backbone + feature cache (phase 1), then optional fine-tuning
(phase 2), written to a run folder that evaluate / predict / export / serve read.

    $ catdog train packed/ --backbone efficientnetv2b0 --epochs 10 --fine-tune-epochs 2

From a notebook (or `catdog.train("packed/", epochs=5)`, which builds the TrainConfig for you):

    from catdog.training import TrainConfig, train
    run_dir = train(TrainConfig(data="packed/", backbone="path/to/feature_extractor.keras", epochs=5))

Run folder (README, "catdog train"): config.json, best.keras, last.keras (+ state.json and head checkpoints
for --resume), metrics.csv, tensorboard/, summary.json, plots/{loss,accuracy}.png, train.log,
calibration.json. The test split is never opened: model selection and calibration use the validation split.

Modules, one job each: config (TrainConfig, defaults, validation, resolve), inputs (class weights and
datasets), models (model/loss/optimizer construction), recorder (per-epoch files, checkpoints, state,
early stopping), tensorboard, phases (the two fit phases), run_folder (folder, config.json, train.log,
resume), finalize (calibration, summary, plots) and trainer (train(), which orders them).
"""

from catdog.training.config import (CLASS_WEIGHT_MODES, MIXED_PRECISION_MODES, MONITORS, RESUME_FREE_KEYS,
                                    RUN_INFO_KEYS, SCHEDULES, TrainConfig, check_resume_config, resolve)
from catdog.training.finalize import finalize, val_logits, write_plots
from catdog.training.inputs import cached_dataset, class_weights, global_batch_size, image_dataset
from catdog.training.models import build_models, compile_model, learning_rate
from catdog.training.recorder import CSV_COLUMNS, RunState
from catdog.training.trainer import train

__all__ = ["CLASS_WEIGHT_MODES", "CSV_COLUMNS", "MIXED_PRECISION_MODES", "MONITORS", "RESUME_FREE_KEYS", "RUN_INFO_KEYS",
           "SCHEDULES", "RunState", "TrainConfig", "build_models", "cached_dataset", "check_resume_config",
           "class_weights", "compile_model", "finalize", "global_batch_size", "image_dataset", "learning_rate",
           "resolve", "train", "val_logits", "write_plots"]
