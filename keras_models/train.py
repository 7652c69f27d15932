"""Training a multi-label classifier on a features folder, with resumable checkpoints.

The loss (keras_models.losses.LossParams) picks the task: single-label losses train a softmax output and
select the model by clip-level validation accuracy, multi-label losses a sigmoid output selected by
clip-level validation mAP. Training can start from another model folder's weights (warm start:
fine-tuning, or continuing after instance selection).

Writes a model folder (keras_models.model_folder).
"""
from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

from beam_jobs.contracts.feature_set import FeatureSet, load_feature_set
from keras_models import model_input
from beam_jobs.contracts import model_folder
from keras_models.architectures import build_model, classifier
from keras_models.augment import mixup
from keras_models.evaluate import predict_clips
from keras_models.guards import FiniteGuard
from keras_models.losses import LossParams, SupervisionLoss
from keras_models.metrics import accuracy, average_precision
from keras_models.model_folder import HistoryFile, load_encoder, load_model


@dataclasses.dataclass(frozen=True)
class TrainParams:
    architecture: str = "vgg_like"  # keras_models.architectures.ARCHITECTURES
    width: float = 1.0
    pooling: str = "max"  # the 2x2 subsampling pool of vgg41/vgg42 (keras_models.layers.pooling.VARIANTS)
    mixup_alpha: float = 0.0  # 0 = no mixup
    mixup_warmup_epochs: int = 0  # mixup starts after this many epochs (waspaa19 config: 10)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    shuffle_buffer: int = 4096
    mixed_precision: bool = False  # float16 compute on a GPU
    loss: LossParams = LossParams()
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    head_hidden_units: int = 0  # on a pretrained encoder: a hidden ReLU layer under the output (0 = linear)
    # The schedule and stopping rule of the authors' supervised training (edufonseca/icassp19 main.py:
    # ReduceLROnPlateau(factor=0.5, patience=5) and EarlyStopping(patience=15, min_delta=0.001), both on the
    # validation metric that selects the model). 0 turns either off.
    lr_patience: int = 5
    lr_factor: float = 0.5
    early_stopping_patience: int = 15
    min_delta: float = 0.001
    # A step schedule instead (edufonseca/uclser20's MultiStepLR, gamma 0.1): the rate x0.1 once each of these
    # fractions of `epochs` has passed, e.g. (0.4, 0.8) = their epochs 80 and 160 of 200.
    lr_milestones: tuple[float, ...] = ()
    # An exponential decay instead: the rate x lr_decay every lr_decay_epochs (the DCASE2019 Task 2 baseline's
    # curated recipe: 0.94 every 2.5 epochs), applied at each epoch's start. 1 = none.
    lr_decay: float = 1.0
    lr_decay_epochs: float = 2.5
    weight_decay: float = 0.0  # SGD's (decoupled) weight decay

    def __post_init__(self):
        if isinstance(self.loss, dict):  # from train_params.json
            object.__setattr__(self, "loss", LossParams(**self.loss))
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0 or self.width <= 0:
            raise ValueError(f"Invalid TrainParams: epochs, batch_size, learning_rate and width must be "
                             f"positive: {self}")
        if min(self.mixup_alpha, self.mixup_warmup_epochs, self.head_hidden_units, self.lr_patience,
               self.early_stopping_patience, self.min_delta) < 0:
            raise ValueError(f"Invalid TrainParams: mixup_alpha, mixup_warmup_epochs, head_hidden_units, lr_patience, "
                             f"early_stopping_patience and min_delta must be >= 0: {self}")
        if not 0 < self.lr_decay <= 1 or self.lr_decay_epochs <= 0:
            raise ValueError(f"Invalid TrainParams: lr_decay must be in (0, 1] and lr_decay_epochs positive: {self}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"Invalid TrainParams: lr_factor must be in (0, 1), got {self.lr_factor}")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        if not all(0 < milestone < 1 for milestone in self.lr_milestones) or self.weight_decay < 0:
            raise ValueError(f"Invalid TrainParams: lr_milestones are fractions of the epochs in (0, 1) and "
                             f"weight_decay >= 0: {self}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Invalid TrainParams: optimizer {self.optimizer!r} not in {sorted(OPTIMIZERS)}")
        from keras_models.layers.pooling import VARIANTS

        if self.pooling not in VARIANTS:
            raise ValueError(f"Invalid TrainParams: pooling {self.pooling!r} not in {sorted(VARIANTS)}")


OPTIMIZERS = {"adam": lambda rate, decay: keras.optimizers.Adam(rate, weight_decay=decay or None),
              "sgd": lambda rate, decay: keras.optimizers.SGD(rate, momentum=0.9, weight_decay=decay or None)}
STEP_GAMMA = 0.1


def milestone_factor(epochs_done: int, milestones: tuple[float, ...], epochs: int) -> float:
    """The step schedule's factor for the epoch after `epochs_done`: STEP_GAMMA per milestone passed."""
    return STEP_GAMMA ** sum(epochs_done >= round(milestone * epochs) for milestone in milestones)


class ClipValidation(keras.callbacks.Callback):
    """Clip-level validation mAP (and accuracy for single-label models) after every epoch; saves the best
    model by `criterion` and remembers it across resumes."""

    def __init__(self, dataset, model_path: str, best_path: str, criterion: str = "val_mAP"):
        super().__init__()
        self.dataset, self.model_path, self.best_path, self.criterion = dataset, model_path, best_path, criterion
        self.best = -np.inf
        if tf.io.gfile.exists(best_path):
            with tf.io.gfile.GFile(best_path) as handle:
                self.best = json.load(handle)[criterion]

    def on_epoch_end(self, epoch, logs=None):
        _, scores, truth = predict_clips(self.model, self.dataset)
        logs["val_mAP"] = float(np.nanmean(average_precision(truth, scores)))
        if self.criterion == "val_accuracy":
            logs["val_accuracy"] = accuracy(truth, scores)
        if logs[self.criterion] > self.best:
            self.best = logs[self.criterion]
            self.model.save(self.model_path)
            with tf.io.gfile.GFile(self.best_path, "w") as handle:
                json.dump({self.criterion: self.best, "epoch": epoch + 1}, handle)


@dataclasses.dataclass(frozen=True)
class ScheduleState:
    """Where the schedule stands after some epochs: the rate of the next epoch, whether to stop, and why."""
    learning_rate: float
    stop: bool
    reason: str


def schedule_state(scores: list[float], params: TrainParams) -> ScheduleState:
    """Replays the plateau schedule and the early-stopping rule over the validation scores so far (higher
    is better), as Keras' ReduceLROnPlateau and EarlyStopping would have run them. A pure function of the
    history, so a resumed run continues exactly where the interrupted one was."""
    rate, best_for_rate, best_for_stop, rate_wait, stop_wait = params.learning_rate, -np.inf, -np.inf, 0, 0
    reductions = 0
    for epoch, score in enumerate(scores, start=1):
        if score > best_for_rate + 1e-4:  # ReduceLROnPlateau's own min_delta
            best_for_rate, rate_wait = score, 0
        else:
            rate_wait += 1
            if params.lr_patience and rate_wait >= params.lr_patience:
                rate, rate_wait, reductions = rate * params.lr_factor, 0, reductions + 1
        if score - params.min_delta > best_for_stop:
            best_for_stop, stop_wait = score, 0
        else:
            stop_wait += 1
            if params.early_stopping_patience and stop_wait >= params.early_stopping_patience:
                return ScheduleState(rate, True, f"stopped after epoch {epoch}: no gain of {params.min_delta} "
                                                 f"in {params.early_stopping_patience} epochs")
    rate *= milestone_factor(len(scores), params.lr_milestones, params.epochs)
    rate *= params.lr_decay ** (len(scores) / params.lr_decay_epochs)
    reason = f"learning rate {rate:.3g} after {reductions} halving(s)" if reductions else f"learning rate {rate:.3g}"
    return ScheduleState(rate, False, reason)


class PlateauSchedule(keras.callbacks.Callback):
    """Sets each epoch's learning rate and stops training by `schedule_state` over the history so far
    (the criterion that selects the model); records the rate in the epoch's logs."""

    def __init__(self, model_dir: str, params: TrainParams, criterion: str):
        super().__init__()
        self.model_dir, self.train_params, self.criterion = model_dir, params, criterion  # `params`: Keras' own

    def _scores(self, before_epoch: int) -> list[float]:
        return [entry[self.criterion] for entry in model_folder.read_history(self.model_dir)
                if entry["epoch"] <= before_epoch]

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(schedule_state(self._scores(epoch), self.train_params).learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if schedule_state([*self._scores(epoch), logs[self.criterion]], self.train_params).stop:
            self.model.stop_training = True


def describe_devices() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s): {[gpu.name for gpu in gpus]}" if gpus else "CPU only (no GPU visible)"


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy (synchronous data parallelism, one replica per GPU) when several GPUs are visible;
    TensorFlow's default single-device strategy otherwise. The batch size stays the global batch."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _write_model_description(model_dir: str, features: FeatureSet, params: TrainParams) -> None:
    model_folder.write_text(model_dir, model_folder.TRAIN_PARAMS_FILE,
                            json.dumps(dataclasses.asdict(params), indent=1, sort_keys=True))
    model_folder.copy_feature_set_files(features.directory, model_dir)


def architecture_of(params: TrainParams, initial_model_dir: str, initial_encoder_dir: str) -> TrainParams:
    """The params with the architecture actually trained: a warm start's or a pretrained encoder's."""
    if initial_model_dir:
        initial = model_folder.read_json(initial_model_dir, model_folder.TRAIN_PARAMS_FILE)
        return dataclasses.replace(params, architecture=initial["architecture"], width=initial["width"],
                                   pooling=initial["pooling"])
    if initial_encoder_dir:
        encoder = model_folder.read_encoder_description(initial_encoder_dir)
        return dataclasses.replace(params, architecture=encoder["architecture"], width=encoder["width"])
    return params


def train_classifier(features_dir: str, model_dir: str, params: TrainParams = TrainParams(),
                     extra_callbacks: tuple = (), initial_model_dir: str = "", initial_encoder_dir: str = "",
                     freeze_encoder: bool = False, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains on the 'train' split, selects by clip-level mAP (accuracy if single-label) on 'val';
    returns a summary dict. `initial_model_dir`: start from that model's weights instead of scratch;
    `initial_encoder_dir`: a pretrained encoder (keras_models.contrastive) under a new classifier layer,
    frozen (`freeze_encoder`: linear evaluation) or trained end to end (fine-tuning).

    Rerunning with the same model_dir after an interruption resumes from the last finished epoch.
    `strategy` defaults to `distribution_strategy()` (MirroredStrategy over several GPUs).
    """
    features = load_feature_set(features_dir)
    params = architecture_of(params, initial_model_dir, initial_encoder_dir)
    tf.io.gfile.makedirs(model_dir)
    strategy = strategy or distribution_strategy()
    print(f"Training on {describe_devices()}, {strategy.num_replicas_in_sync} replica(s); "
          f"{features.patches('train')} train patches, "
          f"{features.patches('val')} val patches, {features.n_classes} classes", flush=True)
    keras.utils.set_random_seed(params.seed)
    if params.mixed_precision and tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    train_data = model_input.supervised(model_input.patch_dataset(
        features, "train", params.batch_size, shuffle=True, seed=params.seed,
        shuffle_buffer=params.shuffle_buffer), with_mask=params.loss.uses_mask)
    warmup_callbacks = []
    if params.mixup_alpha > 0:
        mixing = tf.Variable(params.mixup_warmup_epochs == 0, trainable=False, name="mixup_on")
        train_data = train_data.map(mixup(params.mixup_alpha, mixing), num_parallel_calls=tf.data.AUTOTUNE)
        warmup_callbacks.append(keras.callbacks.LambdaCallback(  # by epoch index: a resumed run agrees
            on_epoch_begin=lambda epoch, logs: mixing.assign(epoch >= params.mixup_warmup_epochs)))
    val_data = model_input.patch_dataset(features, "val", params.batch_size)

    output_activation = "softmax" if params.loss.single_label else "sigmoid"
    with strategy.scope():  # variables are created (mirrored) where the strategy places them
        if initial_model_dir:
            model = load_model(initial_model_dir)
            if tuple(model.input_shape[1:]) != features.input_shape or model.output_shape[-1] != features.n_classes:
                raise ValueError(f"{initial_model_dir}: model maps {model.input_shape[1:]} to "
                                 f"{model.output_shape[-1]} classes; {features_dir} has {features.input_shape} "
                                 f"patches of {features.n_classes} classes")
        elif initial_encoder_dir:
            encoder = load_encoder(initial_encoder_dir)
            if tuple(encoder.input_shape[1:]) != features.input_shape:
                raise ValueError(f"{initial_encoder_dir}: encoder takes {encoder.input_shape[1:]} patches; "
                                 f"{features_dir} has {features.input_shape}")
            encoder.trainable = not freeze_encoder
            model = classifier(encoder, features.n_classes, output_activation, dropout=0.0 if freeze_encoder else 0.2,
                               hidden_units=params.head_hidden_units)
        else:
            model = build_model(params.architecture, features.input_shape, features.n_classes, params.width,
                                params.pooling, output_activation)
        model.compile(optimizer=OPTIMIZERS[params.optimizer](params.learning_rate, params.weight_decay),
                      loss=SupervisionLoss(params.loss),
                      jit_compile=False)
    criterion = "val_accuracy" if params.loss.single_label else "val_mAP"
    _write_model_description(model_dir, features, params)
    checkpoints = model_folder.path(model_dir, model_folder.CHECKPOINTS_DIR)
    tf.io.gfile.makedirs(checkpoints)
    callbacks = [
        FiniteGuard(),
        ClipValidation(val_data, model_folder.path(model_dir, model_folder.MODEL_FILE),
                       model_folder.path(checkpoints, model_folder.BEST_FILE), criterion),
        PlateauSchedule(model_dir, params, criterion),
        *warmup_callbacks,
        HistoryFile(model_dir),
        keras.callbacks.TensorBoard(model_folder.path(model_dir, model_folder.TENSORBOARD_DIR)),
        keras.callbacks.BackupAndRestore(model_folder.path(checkpoints, model_folder.BACKUP_DIR)),
        *extra_callbacks,
    ]
    model.fit(train_data, epochs=params.epochs, callbacks=callbacks, shuffle=False, verbose=2)
    keras.mixed_precision.set_global_policy("float32")
    history = model_folder.read_history(model_dir)
    best = max(history, key=lambda entry: entry[criterion])
    state = schedule_state([entry[criterion] for entry in history], params)
    return {f"best_{criterion}": best[criterion], "best_val_mAP": best["val_mAP"], "best_epoch": best["epoch"],
            "epochs": len(history), "stopped_early": state.stop, "schedule": state.reason,
            "parameters": int(model.count_params())}
