"""The pages a training or evaluation task shows: built from what the task computed, plots inline."""
import base64
import re

import numpy as np
import pytest

from beam_jobs.contracts.model_folder import read_history
from keras_models import model_pages
from keras_models.evaluate import evaluate_classifier
from keras_models.metrics import average_precision, precision_recall
from keras_models.model_folder import HistoryFile
from keras_models.train import TrainParams, train_classifier


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_precision_recall_gives_the_average_precision():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(40, 3)) < 0.3
    scores = np.round(rng.uniform(size=(40, 3)), 1)  # ties
    for c in range(3):
        precision, recall = precision_recall(truth[:, c], scores[:, c])
        assert recall[-1] == 1.0 and np.all(np.diff(recall) >= 0)
        assert np.sum(np.diff(np.r_[0, recall]) * precision) == pytest.approx(average_precision(truth, scores)[c])
    precision, recall = precision_recall(np.array([True, False, True]), np.array([0.9, 0.8, 0.1]))
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1])


@pytest.fixture(scope="module")
def trained(features_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("paged_model"))
    train_classifier(features_dir, directory, TrainParams(width=0.25, epochs=2, batch_size=16))
    return directory


def test_training_page_plots_every_epoch_and_marks_the_kept_one(trained, tmp_path):
    page = model_pages.training_page(trained, "Training")
    assert page.count("<tr>") == 3  # header and two epochs
    history = read_history(trained)
    best = max(history, key=lambda entry: entry["val_mAP"])
    assert f"kept: the model of epoch {best['epoch']} of 2, the best val_mAP ({best['val_mAP']:.4f}); ran all 2" in page
    assert len(images(page)) == 1 and images(page)[0].startswith(b"\x89PNG")
    pretraining = str(tmp_path / "pretraining")
    logger = HistoryFile(pretraining)
    for epoch in range(3):
        logger.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    assert "the last one is kept" in model_pages.training_page(pretraining, "Pretraining")


def test_evaluation_page_shows_per_class_ap_and_precision_recall_curves(trained, features_dir):
    evaluation = evaluate_classifier(trained, features_dir, "eval")
    page = model_pages.evaluation_page(evaluation, "Eval, <baseline>")
    assert "Eval, &lt;baseline&gt;" in page  # escaped
    assert f"mAP {evaluation.metrics['mAP']:.4f}" in page
    assert len(images(page)) == 2
    # with the model's folder: its validation curve beside, and which epoch was kept and why
    with_curve = model_pages.evaluation_page(evaluation, "Eval", trained)
    assert len(images(with_curve)) == 3 and "Model kept: the model of epoch" in with_curve
    assert "Model kept: the model of epoch" in evaluation.markdown("Eval", model_pages.model_selection(trained))


def test_single_label_page_shows_the_confusion_matrix(noisy_features_dir, tmp_path):
    from keras_models.evaluate import evaluate_single_label
    from keras_models.losses import LossParams

    train_classifier(noisy_features_dir, str(tmp_path / "model"),
                     TrainParams(width=0.25, epochs=1, batch_size=16, loss=LossParams("cce")))
    evaluation = evaluate_single_label(str(tmp_path / "model"), noisy_features_dir, "test")
    page = model_pages.single_label_page(evaluation, "Test")
    assert f"{evaluation.scalars['accuracy']:.4f}" in page and len(images(page)) == 1


def test_draw_saves_the_plots_of_a_runs_pages_byte_for_byte(tmp_path):
    from keras_models.study_reports import figure_png, html_page, subplots
    from pipelines.draw import run_pictures

    pictures = []
    for value in (1, 2):
        figure, axis = subplots()
        axis.plot([0, value])
        pictures.append(figure_png(figure))
    (tmp_path / "run" / "train-classifier").mkdir(parents=True)
    (tmp_path / "run" / "train-classifier" / "curves").write_text(html_page("t", "i", "| a |\n|---|\n| 1 |", *pictures))
    (tmp_path / "run" / "train-classifier" / "model").mkdir()  # folders are not pages
    written = run_pictures(str(tmp_path / "run"), str(tmp_path / "pictures"))
    assert [path.rsplit("/", 1)[1] for path in written] == ["train-classifier-curves-1.png", "train-classifier-curves-2.png"]
    assert [open(path, "rb").read() for path in written] == pictures
