"""The published values of docs/recipes.md, read from the code's own defaults: a default that drifts from its
source fails here. Each value names its source (paper, or repository file)."""
import pytest

from beam_jobs.contracts.params import FeatureParams
from keras_models.architectures import CLASSIFIER_LAYERS, build_model
from keras_models.contrastive import DOWNSTREAM_SGD, ContrastiveParams
from keras_models.layers.pooling import VARIANTS
from keras_models.losses import LossParams
from keras_models.train import TrainParams
from pipelines import defaults, discover


def pipeline_defaults(name: str) -> dict:
    return defaults(discover()[name])


def test_fsd50k_features_are_the_authors_released_extraction():
    # edufonseca/uclser20 config/params_unsupervised_cl.yaml `extract:` and extract/wav2spec_utils.py
    params = FeatureParams()
    assert (params.sample_rate, params.n_mels, params.win_length, params.hop_length) == (22050, 96, 660, 220)
    assert (params.n_fft, params.fmin, params.fmax, params.window) == (2048, 50.0, 10500.0, "hamming")
    assert (params.log_scale, params.log_offset, params.mel_norm, params.mel_scale) == ("log10", 1.1e-8, "none",
                                                                                         "slaney")
    assert params.spectrum_power == 2.0 and params.normalize_waveform
    assert (params.patch_frames, params.patch_hop_frames) == (101, 50)


def test_fsdnoisy18k_features_are_icassp19s():
    # edufonseca/icassp19 config/params.yaml `extract:`
    params = FeatureParams.fsdnoisy18k()
    assert (params.sample_rate, params.win_length, params.hop_length, params.n_fft) == (44100, 1764, 882, 2048)
    assert (params.fmin, params.fmax, params.log_offset) == (0.0, 22050.0, 2.220446049250313e-16)
    assert (params.patch_frames, params.patch_hop_frames, params.log_scale) == (100, 50, "log10")


def test_dcase_features_are_the_baselines():
    # DCASE-REPO/dcase2018_baseline task2/README.md and dcase2019_task2_baseline README.md "Input features"
    for params, bands, low, high, frames, hop in ((FeatureParams.dcase2018(), 64, 125.0, 7500.0, 25, 12),
                                                   (FeatureParams.dcase2019(), 96, 20.0, 20000.0, 100, 50)):
        assert (params.sample_rate, params.win_length, params.hop_length, params.window) == (44100, 1102, 441, "hann")
        assert (params.spectrum_power, params.mel_scale, params.log_scale, params.log_offset) == (1.0, "htk", "natural",
                                                                                                 0.001)
        assert (params.n_mels, params.fmin, params.fmax) == (bands, low, high)
        assert (params.patch_frames, params.patch_hop_frames) == (frames, hop)
        assert not params.normalize_waveform


def test_supervised_training_is_icassp19s_schedule():
    # edufonseca/icassp19 main.py: Adam(lr=1e-3), ReduceLROnPlateau(factor=0.5, patience=5),
    # EarlyStopping(patience=15, min_delta=0.001); config/params.yaml batch_size 64
    params = TrainParams()
    assert (params.optimizer, params.learning_rate, params.batch_size) == ("adam", 1e-3, 64)
    assert (params.lr_factor, params.lr_patience, params.early_stopping_patience, params.min_delta) == (0.5, 5, 15,
                                                                                                       0.001)


def test_noisy_label_losses_and_config():
    # icassp19 config/params.yaml `loss:`; waspaa19 config/params.yaml `loss:` and `learn:`
    loss = LossParams()
    assert (loss.q, loss.beta, loss.max_fraction, loss.outlier_sigmas) == (0.7, 0.3, 0.6, 1.9)
    noisy = pipeline_defaults("noisy_labels")
    assert noisy["architecture"] == "icassp19_cnn" and noisy["aggregation"] == "geometric_mean"
    assert (noisy["stage1_epochs"], noisy["stage2_epochs"], noisy["stage2_q"]) == (15, 85, 0.5)
    assert (noisy["discard_percentile"], noisy["prune_percentile"], noisy["epochs"]) == (93.0, 97.0, 160)
    assert noisy["feature_params"] == "fsdnoisy18k"


def test_contrastive_recipe_is_uclser20s():
    # uclser20 config/params_unsupervised_cl.yaml, params_supervised_lineval.yaml, params_supervised_finetune.yaml
    params = ContrastiveParams()
    assert (params.architecture, params.temperature, params.head_units, params.batch_size) == ("resnet18", 0.2, 512,
                                                                                               128)
    assert (params.learning_rate, params.momentum, params.weight_decay, params.epochs) == (0.03, 0.9, 1e-4, 500)
    assert [round(fraction * 500) for fraction in params.lr_milestones] == [325, 425]
    assert params.augmentations == ("rrc", "compander", "noise") and params.mix_back_max == 0.05
    assert [round(fraction * 200) for fraction in DOWNSTREAM_SGD["lr_milestones"]] == [80, 160]
    assert DOWNSTREAM_SGD["weight_decay"] == 1e-4
    pipeline = pipeline_defaults("contrastive_ssl")
    assert (pipeline["pretrain_epochs"], pipeline["downstream_epochs"], pipeline["batch_size"]) == (500, 200, 128)
    assert (pipeline["linear_learning_rate"], pipeline["fine_tune_learning_rate"]) == (0.1, 0.01)
    assert pipeline["pretrain_flag"] == "!manually_verified"  # pretraining on the noisy set (train_on_clean: 0)


def test_missing_labels_teacher_and_label_sets_are_the_thesis():
    # the thesis' slides 126-127: a ResNet-50 teacher, 18 label sets with tc in [0, 20] %
    defaults = pipeline_defaults("missing_labels")
    assert defaults["teacher_architecture"] == "resnet50"
    assert len(defaults["tc_percents"]) == 18 and min(defaults["tc_percents"]) == 0 and max(defaults["tc_percents"]) == 20


def test_shift_invariance_pools_are_shift_secs():
    # edufonseca/shift_sec src/model.py: ApsPool with a 5x5 blur; TLPF and APS+TLPF
    assert VARIANTS["aps"] == ("binomial5", "aps") and VARIANTS["tlpf_aps"] == ("trainable", "aps")
    assert pipeline_defaults("shift_invariance")["architecture"] == "vgg41"


def test_separation_has_the_papers_eight_channels():
    assert pipeline_defaults("separation_ssl")["separator_channels"] == 8  # WASPAA 2021: TDCN++ with M = 8


@pytest.mark.parametrize("pipeline,architecture,features,learning_rate", [
    ("dcase2018_task2", "dcase2018_cnn", "dcase2018", 1e-4),  # dcase2018_baseline task2/README.md
    ("dcase2019_task2", "mobilenet_v1", "dcase2019", 1e-4),  # dcase2019_task2_baseline README.md
])
def test_dcase_baselines(pipeline, architecture, features, learning_rate):
    defaults = pipeline_defaults(pipeline)
    assert (defaults["architecture"], defaults["feature_params"], defaults["learning_rate"]) == (
        architecture, features, learning_rate)
    assert defaults["lr_patience"] == 0 and defaults["early_stopping_patience"] == 0  # a constant rate
    if pipeline == "dcase2019_task2":
        assert (defaults["noisy_epochs"], defaults["curated_epochs"], defaults["fine_tune_learning_rate"]) == (
            10, 100, 3e-3)
        assert (defaults["noisy_label_smoothing"], defaults["curated_label_smoothing"]) == (0.3, 0.1)
        assert defaults["fine_tune_lr_decay"] == 0.94 and TrainParams().lr_decay_epochs == 2.5
    else:
        assert defaults["epochs"] == 5


@pytest.mark.parametrize("architecture,input_shape,classes,weights", [
    ("crnn", (101, 96), 200, 960_584),  # the FSD50K paper's 0.96M; uclser20 models/audio_models.py CRNN_tagger
    ("dcase2018_cnn", (25, 64), 41, 658_591),  # the baseline README's 658.1K weights plus 491 biases
    ("mobilenet_v1", (100, 96), 80, 3_289_072),  # the baseline README's 3.3M
])
def test_published_models_have_their_published_size(architecture, input_shape, classes, weights):
    assert build_model(architecture, input_shape, classes).count_params() == weights


def test_the_classifier_layers_of_the_recipes():
    assert CLASSIFIER_LAYERS["icassp19_cnn"]["dropout"] == 0.5 and CLASSIFIER_LAYERS["icassp19_cnn"]["l2"] == 1e-3
    assert CLASSIFIER_LAYERS["vgg41"]["dropout"] == 0.0  # no dropout in the shift-invariance models
