"""Multi-device training with MirroredStrategy, on two logical CPU devices (a fresh interpreter, because
logical devices must be configured before TensorFlow initialises)."""
import json
import subprocess
import sys

SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_models.train import TrainParams, train_classifier

class Placement(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.variable_type = type(self.model.trainable_weights[0].value).__name__

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
placement = Placement()
summary = train_classifier(sys.argv[1], sys.argv[2], TrainParams(width=0.25, epochs=1, batch_size=16),
                           extra_callbacks=(placement,), strategy=strategy)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "variable_type": placement.variable_type,
                  **summary}))
"""


def test_training_runs_mirrored_over_two_devices(features_dir, tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, features_dir, str(tmp_path / "model")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["replicas"] == 2
    assert summary["variable_type"] == "MirroredVariable"
    assert 0 <= summary["best_val_mAP"] <= 1 and summary["epochs"] == 1
    assert (tmp_path / "model" / "model.keras").exists()
