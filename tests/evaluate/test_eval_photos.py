"""Calibration, the unknown-item score, labelled-folder metrics and `fashionbench predict` end to end."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fashionbench as fb
from fashionbench.cli import main
from fashionbench.data.photos import to_fmnist
from fashionbench.errors import ConfigError, PhotoError
from fashionbench.evaluate.photos import photo_metrics, read_labels
from fashionbench.evaluate.stats import fit_temperature
from fashionbench.forward import unknown_scores

PHOTOS = Path(__file__).resolve().parents[1] / "photos" / "clothing"


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 10))
    p = torch.softmax(torch.as_tensor(logits / true_t), 1).numpy()
    labels = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


def test_unknown_scores_rise_as_the_logits_flatten():
    sure, unsure = [10.0] + [0.0] * 9, [0.1] * 10
    s = unknown_scores(torch.tensor([sure, unsure]))
    assert s["msp"][0] < 0.01 and s["msp"][1] == pytest.approx(0.9, abs=1e-6)
    assert s["energy"][0] < s["energy"][1]


def test_photo_metrics_counts_top1_top2_per_class_and_unknown_auroc():
    names = [f"c{i}" for i in range(10)]
    logits = np.zeros((4, 10))
    logits[0, 3] = 5  # true 3, right
    logits[1, [4, 6]] = [5, 4]  # true 6: top-2 only
    logits[2, 1] = 1  # unknown photo, unsure
    logits[3, 1] = 8  # true 1, right and sure
    m = photo_metrics(logits, [3, 6, -1, 1], names)
    assert m["labelled"] == 3 and m["unknown_items"] == 1
    assert m["top1_accuracy"] == pytest.approx(2 / 3) and m["top2_accuracy"] == 1.0
    assert m["per_class_accuracy"] == {"c1": 1.0, "c3": 1.0, "c6": 0.0}
    assert m["confusion_matrix"][6][4] == 1
    assert m["unknown_auroc"]["msp"] == 1.0  # the unknown photo is the least sure one


@pytest.mark.parametrize(("text", "problem"), [
    ("file,label\na.jpg,1\n", "missing column(s) path, fmnist_label"),
    ("path,fmnist_label\na.jpg,12\n", "line 2: label '12' is not a class index 0-9"),
    ("path,fmnist_label\na.jpg,1\nb.jpg,shirt\n", "line 3: label 'shirt'"),
    ("path,fmnist_label\n", "no rows"),
    ("path,fmnist_label\n,3\n", "line 2: empty path"),
    ("path,fmnist_label\na.jpg,inf\n", "label 'inf'"),
    ("path,fmnist_label\na.jpg,1\na.jpg,2\n", "listed again (first on line 2)"),
    ('path,fmnist_label\n"a.jpg,1\n' + "x" * 140000 + "\n", "not a valid CSV"),
])
def test_bad_labels_csv_names_the_file_and_the_problem(tmp_path, text, problem):
    f = tmp_path / "labels.csv"
    f.write_text(text)
    with pytest.raises(PhotoError, match="labels.csv") as e:
        read_labels(f)
    assert problem in str(e.value)


def test_labels_csv_paths_are_relative_to_its_folder_and_empty_means_unknown():
    rows = read_labels(PHOTOS / "labels.csv")
    assert [r.label for r in rows] == [3, 1, 0, 4, 6, None]
    assert all(r.path.is_file() for r in rows)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small model trained with a validation split, so it carries a fitted temperature."""
    from conftest import make_dataset

    out = tmp_path_factory.mktemp("run") / "run"
    fb.train("cnn_002", data=make_dataset(n_train=800), out=out, epochs=2, batch_size=64, val_fraction=0.2,
             report=False, device="cpu", seed=0)
    return out / "best.pt"


def test_training_with_a_validation_split_stores_the_temperature_and_predict_uses_it(checkpoint, tiny_dataset):
    ckpt = torch.load(checkpoint, weights_only=True)
    t = ckpt["temperature"]
    assert t > 0 and t != 1.0
    metrics = json.loads((checkpoint.parent / "metrics.json").read_text())
    assert metrics["temperature"] == t and metrics["temperature_fitted_on"].startswith("validation split")
    p = fb.load(checkpoint, device="cpu")
    assert p.temperature == t
    x = tiny_dataset.test_images[:16]
    assert np.allclose(p.predict_proba(x), torch.softmax(p.predict_logits(x) / t, 1).numpy(), atol=1e-6)


def test_a_run_without_validation_split_fits_the_temperature_on_training_images(tiny_dataset, tmp_path):
    r = fb.train("cnn_002", data=tiny_dataset, out=tmp_path / "r", epochs=1, batch_size=64, val_fraction=0.0,
                 report=False, device="cpu")
    t = r.metrics["temperature"]
    assert t > 0 and "training images (no validation split)" in r.metrics["temperature_fitted_on"]
    assert torch.load(tmp_path / "r" / "best.pt", weights_only=True)["temperature"] == t
    assert r.predictor().temperature == t


def test_predictor_takes_paths_pil_images_arrays_and_bytes_alike(checkpoint):
    p = fb.load(checkpoint, device="cpu")
    path = PHOTOS / "dress.jpg"
    pil = Image.open(path)
    by_path, by_pil, by_array, by_bytes = p.predict(str(path)), p.predict([pil]), \
        p.predict(np.asarray(pil.convert("RGB"))), p.predict(path.read_bytes())
    assert by_path[0]["label"] == by_pil[0]["label"] == by_array[0]["label"] == by_bytes[0]["label"]
    assert by_path[0]["probability"] == pytest.approx(by_pil[0]["probability"], abs=1e-5)
    rec = p.predict([path, pil], k=2)
    assert len(rec) == 2 and len(rec[0]["top_k"]) == 2 and set(rec[0]) >= {"unknown", "unknown_score"}
    with pytest.raises(PhotoError, match="missing.jpg"):
        p.predict(["missing.jpg"])


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second small run (another seed, one epoch) to make an ensemble with `checkpoint`."""
    from conftest import make_dataset

    out = tmp_path_factory.mktemp("run") / "other"
    fb.train("cnn_002", data=make_dataset(n_train=800), out=out, epochs=1, batch_size=64, val_fraction=0.2,
             report=False, device="cpu", seed=1)
    return out


def test_an_ensemble_averages_its_members_logits_over_their_temperatures(checkpoint, other, capsys):
    a, b = fb.load(checkpoint, device="cpu"), fb.load(other, device="cpu")
    both = fb.load([checkpoint, other], device="cpu")
    assert len(both.members) == 2 and both.temperature == 1.0 and "ensemble" in repr(both)
    photos = [PHOTOS / "pants.jpg", PHOTOS / "dress.jpg"]
    x = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for inputs in (photos, x):  # photos are converted once for all members
        want = torch.softmax((a.predict_logits(inputs) / a.temperature + b.predict_logits(inputs) / b.temperature) / 2, 1)
        assert np.allclose(both.predict_proba(inputs), want.numpy(), atol=1e-5)
    rec = both.predict(photos, k=2)
    assert [r["probability"] for r in rec] == pytest.approx(both.predict_proba(photos).max(1).tolist(), abs=1e-6)
    with pytest.raises(ConfigError, match="one member"):
        both.embeddings(x)
    with pytest.raises(ConfigError, match="at least two"):
        fb.inference.Predictor.ensemble([a])
    assert main(["predict", str(checkpoint), str(PHOTOS / "pants.jpg"), "--ensemble", str(other), "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["probability"] == pytest.approx(float(both.predict_proba([PHOTOS / "pants.jpg"]).max()), abs=1e-5)


def test_predict_cli_table_json_csv_and_show(checkpoint, tmp_path, capsys):
    assert main(["predict", str(checkpoint), str(PHOTOS), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "dress.jpg" in out and "top-3" in out and "6 photo(s)" in out
    assert main(["predict", str(checkpoint), str(PHOTOS / "*.jpg"), "--json", "-k", "2", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and all(len(r["top_k"]) == 2 for r in rows)
    assert all(r["top_k"][0]["probability"] >= r["top_k"][1]["probability"] for r in rows)
    assert all(0 <= r["unknown_score"] <= 1 and isinstance(r["unknown"], bool) for r in rows)
    assert main(["predict", str(checkpoint), str(PHOTOS / "pants.jpg"), "--csv", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("path,top1,p1,top2,p2,top3,p3,unknown") and len(lines) == 2
    show = tmp_path / "show"
    assert main(["predict", str(checkpoint), str(PHOTOS), "--show", str(show), "--device", "cpu"]) == 0
    assert (show / "_contact_sheet.png").is_file() and len(list(show.glob("*.png"))) == 7
    assert Image.open(show / "_contact_sheet.png").size[0] > 28 * 4


def test_predict_keeps_going_past_bad_files_and_lists_them(checkpoint, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(PHOTOS / "dress.jpg", folder / "good.jpg")
    (folder / "notes.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes((PHOTOS / "pants.jpg").read_bytes()[:400])
    assert main(["predict", str(checkpoint), str(folder), "--device", "cpu"]) == 2  # after predicting the rest
    captured = capsys.readouterr()
    assert "good.jpg" in captured.out
    assert "3 input(s) could not be used" in captured.err
    for name in ("notes.jpg", "empty.png", "cut.jpg"):
        assert name in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("case", ["empty-folder", "no-match", "no-paths", "missing-checkpoint", "report-without-labels",
                                  "labels-names-a-folder"])
def test_predict_bad_input_is_one_line_exit_2(checkpoint, tmp_path, capsys, case):
    (tmp_path / "empty").mkdir()
    args = {"empty-folder": [str(checkpoint), str(tmp_path / "empty")],
            "no-match": [str(checkpoint), str(tmp_path / "*.jpg")],
            "no-paths": [str(checkpoint)],
            "missing-checkpoint": [str(tmp_path / "nope.pt"), str(PHOTOS)],
            "report-without-labels": [str(checkpoint), str(PHOTOS), "--report", str(tmp_path / "r")],
            "labels-names-a-folder": [str(checkpoint), "--labels", str(PHOTOS)]}[case]
    assert main(["predict", *args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fashionbench: error:")


def test_predict_labels_scores_the_folder_and_writes_the_report(checkpoint, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["predict", str(checkpoint), "--labels", str(PHOTOS / "labels.csv"), "--report", str(report),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "5 labelled photos, 1 of none of the classes" in out and "top-1" in out and "AUROC" in out
    html = (report / "report.html").read_text()
    assert 'id="per-class"' in html and "Most confident mistakes" in html and "Unknown items" in html
    m = json.loads((report / "metrics.json").read_text())
    assert m["labelled"] == 5 and sum(map(sum, m["confusion_matrix"])) == 5
    assert m["unknown_auroc"]["msp"] is not None


def test_predict_labels_with_a_bad_label_file_is_exit_2(checkpoint, tmp_path, capsys):
    bad = tmp_path / "labels.csv"
    bad.write_text("path,fmnist_label\ndress.jpg,11\n")
    assert main(["predict", str(checkpoint), "--labels", str(bad), "--device", "cpu"]) == 2
    assert "label '11'" in capsys.readouterr().err


def test_predict_labels_scores_the_photos_it_can_and_fails_for_a_missing_one(checkpoint, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    shutil.copy(PHOTOS / "dress.jpg", tmp_path / "dress.jpg")
    labels.write_text("path,fmnist_label\ndress.jpg,3\ngone.jpg,1\n")
    assert main(["predict", str(checkpoint), "--labels", str(labels), "--report", str(tmp_path / "r"), "--json",
                 "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["labelled"] == 1
    assert "gone.jpg" in captured.err and "Traceback" not in captured.err


def test_imagenet_prior_combines_as_a_weighted_geometric_mean(checkpoint, capsys):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the [imagenet] extra is not installed")
    photos = [PHOTOS / "pants.jpg", PHOTOS / "t-shirt.jpg"]
    plain, combined = fb.load(checkpoint, device="cpu"), fb.load(checkpoint, device="cpu", imagenet_weight=1.0)
    boxes = [to_fmnist(p).box for p in photos]  # the prior looks at the item the conversion found
    prior = combined.imagenet_prior(photos, boxes)
    assert prior.shape == (2, 10) and np.allclose(np.exp(prior).sum(1), 1)
    assert not np.allclose(prior, combined.imagenet_prior(photos), atol=1e-3)  # not the centre crop
    want = torch.log_softmax(plain.predict_logits(photos) / plain.temperature + torch.as_tensor(prior).float(), 1)
    # compared as log-probabilities from the logits: the log of a float32 probability far in the tail is coarse
    assert torch.allclose(torch.log_softmax(combined.predict_logits(photos) / combined.temperature, 1), want, atol=1e-4)
    assert np.allclose(combined.predict_proba(photos), torch.exp(want).numpy(), atol=1e-6)
    # converted beforehand: the same logits when the photos and boxes come along
    images = np.stack([to_fmnist(p).image for p in photos])
    assert torch.allclose(combined.predict_logits(images, photos=photos, boxes=boxes), combined.predict_logits(photos),
                          atol=1e-5)
    with pytest.raises(ConfigError, match="pass the photos with them"):
        combined.predict_logits(images, boxes=boxes)
    # Fashion-MNIST arrays have no photo behind them: the prior leaves them alone.
    x = np.zeros((1, 28, 28), np.uint8)
    assert torch.equal(plain.predict_logits(x), combined.predict_logits(x))
    assert main(["predict", str(checkpoint), str(PHOTOS / "pants.jpg"), "--imagenet-prior", "--json",
                 "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["path"].endswith("pants.jpg")


def test_an_ensemble_takes_the_imagenet_prior_once(checkpoint, other):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the [imagenet] extra is not installed")
    photos = [PHOTOS / "pants.jpg", PHOTOS / "t-shirt.jpg"]
    plain, combined = fb.load([checkpoint, other], device="cpu"), fb.load([checkpoint, other], device="cpu",
                                                                          imagenet_weight=1.0)
    assert all(m.imagenet_weight == 0 for m in combined.members)
    prior = combined.imagenet_prior(photos, [to_fmnist(p).box for p in photos])
    want = torch.log_softmax(plain.predict_logits(photos) + torch.as_tensor(prior).float(), 1)
    assert torch.allclose(torch.log_softmax(combined.predict_logits(photos), 1), want, atol=1e-4)


def test_own_labelled_photos_join_the_training_set(tiny_dataset, tmp_path):
    r = fb.train("cnn_002", data=tiny_dataset, out=tmp_path / "r", epochs=1, batch_size=64, val_fraction=0.0,
                 report=False, device="cpu", photos=[str(PHOTOS / "labels.csv")], photos_repeat=3)
    assert r.metrics["train_size"] == len(tiny_dataset.train_labels) + 5 * 3  # shoes.jpg has no label: left out
    assert json.loads((tmp_path / "r" / "config.json").read_text())["photos"] == [str(PHOTOS / "labels.csv")]


def test_training_photos_that_cannot_be_read_stop_the_run_with_their_name(tiny_dataset, tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("path,fmnist_label\nmissing.jpg,3\n")
    with pytest.raises(PhotoError, match="missing.jpg"):
        fb.train("cnn_002", data=tiny_dataset, save=False, epochs=1, device="cpu", photos=[str(bad)])
    with pytest.raises(fb.FashionbenchError, match="--photos-repeat must be at least 1"):
        fb.train("cnn_002", data=tiny_dataset, save=False, epochs=1, device="cpu", photos_repeat=0)


def test_show_names_stay_distinct():
    from fashionbench.evaluate.photos import show_names

    names = show_names(["a/x.jpg", "a/x.png", "my shirt.jpg", "my_shirt.jpg", "contact_sheet.jpg", "A/X.jpg"])
    assert len({n.lower() for n in names}) == 6 and "_contact_sheet.png" not in names


def test_a_one_colour_image_is_listed_not_classified_and_bad_output_folders_fail_first(checkpoint, tmp_path, capsys):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (60, 80), (200, 30, 30)).save(folder / "flat.png")
    shutil.copy(PHOTOS / "dress.jpg", folder / "dress.jpg")
    assert main(["predict", str(checkpoint), str(folder), "--device", "cpu"]) == 2  # the dress still predicted
    captured = capsys.readouterr()
    assert "dress.jpg" in captured.out and "flat.png" not in captured.out and "flat.png: no item found" in captured.err
    (tmp_path / "afile").write_text("x")
    assert main(["predict", str(checkpoint), str(folder), "--show", str(tmp_path / "afile"), "--device", "cpu"]) == 2
    assert "--show" in capsys.readouterr().err
    with pytest.raises(fb.FashionbenchError, match="unknown photo method 'magic'"):
        fb.load(checkpoint, device="cpu", photo_method="magic")
