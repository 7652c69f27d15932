"""Training that fails loudly: a non-finite loss, metric or weight stops the run with an error naming the
epoch, before a broken model is selected, saved or evaluated."""
from __future__ import annotations

import math

import keras
import numpy as np


class NonFiniteTraining(RuntimeError):
    """The loss, a logged metric or a weight stopped being finite."""


class FiniteGuard(keras.callbacks.Callback):
    """Checks the loss after every batch and every logged value and weight after every epoch. Put it first
    among the callbacks, so nothing saves the model of a broken epoch."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteTraining(f"epoch {self.epoch}, batch {batch + 1}: the training loss is {float(loss)}; "
                                    "check the input features (normalisation statistics) and the learning rate")

    def on_epoch_end(self, epoch, logs=None):
        bad_logs = {key: float(value) for key, value in (logs or {}).items() if not math.isfinite(float(value))}
        bad_weights = [weight.path for weight in self.model.weights
                       if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight)))]
        if bad_logs or bad_weights:
            raise NonFiniteTraining(f"epoch {epoch + 1}: non-finite " + "; ".join(
                part for part in (f"logs {bad_logs}" if bad_logs else "",
                                  f"weights {bad_weights[:5]}" if bad_weights else "") if part))
