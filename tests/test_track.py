"""Experiment tracking: a real local MLflow store and real TensorBoard event files, read back."""

from __future__ import annotations

import math
import pickle
import sys

import pytest

from conftest import make_dataset
from fashionbench.errors import ConfigError
from fashionbench.serve.local import free_port
from fashionbench.track import DEFAULT_MLFLOW_URI, TrackingSpec, log_group_result, open_run, tracked_group, tracking_spec
from fashionbench.train.config import TrainConfig
from fashionbench.train.run import train_run

EPOCHS = 2


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tiny training run watched by both trackers at once, the MLflow one nested in a group."""
    root = tmp_path_factory.mktemp("track")
    cfg = TrainConfig(model="mlp_002", epochs=EPOCHS, batch_size=64, lr=1e-3, device="cpu", precision="fp32", seed=0)
    mlflow_spec = tracking_spec("mlflow", f"sqlite:///{root}/store/mlruns.db", "tests")
    tb_spec = tracking_spec("tensorboard")
    run_dir = root / "run"
    with tracked_group(mlflow_spec, "study", params={"folds": 2}, tags={"protocol": "cv"}) as group:
        ml = open_run(group, "fold1", cfg.to_dict(), run_dir)
        tb = open_run(tb_spec, "fold1", cfg.to_dict(), run_dir)
        result = train_run(cfg, run_dir, dataset=make_dataset(), callbacks=[ml, tb])
        for tracker in (ml, tb):
            tracker.log_result(result)
            tracker.close()
            tracker.close()  # twice is harmless
        (root / "summary.json").write_text('{"mean": 0.9}')
        log_group_result(group, {"mean_accuracy": 0.9, "folds": 2, "ok": True}, [root / "summary.json"])
    return {"root": root, "result": result, "ml": ml, "tb": tb, "group": group}


def _client(tracked):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tracked['root']}/store/mlruns.db")


def test_mlflow_run_holds_params_metrics_and_artifacts(tracked):
    client, result = _client(tracked), tracked["result"]
    run = client.get_run(tracked["ml"].run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "fold1"
    params = run.data.params
    assert params["lr"] == "0.001" and params["epochs"] == str(EPOCHS) and params["model"] == "mlp_002"
    assert params["augment"] == "[]" and params["model_args"] == "{}"
    assert run.data.tags["model"] == "mlp_002" and run.data.tags["run_dir"] == str(result.run_dir)
    for key in ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "lr", "seconds"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1)), key
    val = [m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert val == pytest.approx([row["val_accuracy"] for row in result.state.history])
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert run.data.metrics["params"] == result.metrics["params"] and "ece" in run.data.metrics
    assert "stopped_early" not in run.data.metrics  # bools are not metrics
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert top == {"figures", "report", "model"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {"model/best.pt"}
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/metrics.json", "report/config.json", "report/history.csv"} <= report
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
    assert figures and all(p.endswith(".png") for p in figures)
    # the artifacts sit beside the database, not in the current folder
    assert run.info.artifact_uri.startswith((tracked["root"] / "store" / "mlartifacts").as_uri())


def test_mlflow_nested_run_carries_the_group_id(tracked):
    client = _client(tracked)
    group_id = tracked["group"].parent_run_id
    child = client.get_run(tracked["ml"].run_id)
    assert child.data.tags["mlflow.parentRunId"] == group_id
    group = client.get_run(group_id)
    assert group.info.status == "FINISHED" and group.info.run_name == "study"
    assert group.data.params == {"folds": "2"} and group.data.tags["protocol"] == "cv"
    assert group.data.metrics == {"mean_accuracy": 0.9, "folds": 2}
    assert [a.path for a in client.list_artifacts(group_id, "summary")] == ["summary/summary.json"]
    exp = client.get_experiment_by_name("tests")
    found = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{group_id}'")
    assert [r.info.run_id for r in found] == [child.info.run_id]


def test_mlflow_batch_loss_is_sampled_not_logged_per_batch(tracked):
    spec = TrackingSpec("mlflow", f"sqlite:///{tracked['root']}/store/mlruns.db", "tests")
    with open_run(spec, "batches", {"model": "x"}, None) as tracker:
        for step in range(1, 121):
            tracker.on_batch_end(None, {"epoch": 1, "step": step, "batch": step - 1, "loss": float(step), "lr": 0.1})
        tracker.on_epoch_end(None, {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": math.nan,
                                    "val_accuracy": math.nan, "lr": 0.1, "seconds": 1.0, "elapsed": 1.0})
    client = _client(tracked)
    history = client.get_metric_history(tracker.run_id, "batch_loss")
    assert [(m.step, m.value) for m in history] == [(50, 25.5), (100, 75.5)]  # the mean since the last point
    assert client.get_metric_history(tracker.run_id, "val_accuracy") == []  # NaN: no validation split
    assert client.get_run(tracker.run_id).info.status == "FINISHED"


def test_mlflow_failure_marks_run_and_group_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = tracking_spec("mlflow")
    assert spec.uri is None and DEFAULT_MLFLOW_URI == "sqlite:///mlruns.db"
    assert pickle.loads(pickle.dumps(spec)) == spec  # it travels to worker processes
    with pytest.raises(RuntimeError, match="boom"), tracked_group(spec, "group") as group, \
            open_run(group, "run", {"model": "x"}, None) as tracker:
        raise RuntimeError("boom")
    assert (tmp_path / "mlruns.db").is_file()  # the default store: in the current folder
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert client.get_run(group.parent_run_id).info.status == "FAILED"
    with open_run(spec, "stopped", {}, None) as tracker:
        pass
    tracker.close("KILLED")  # after close: nothing changes
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    with pytest.raises(KeyboardInterrupt), open_run(spec, "interrupted", {}, None) as tracker:
        raise KeyboardInterrupt
    assert client.get_run(tracker.run_id).info.status == "KILLED"


_EPOCH_ROW = {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1, "seconds": 1.0, "elapsed": 1.0}


def _failing_store(tracker, monkeypatch) -> list:
    """Every write of `tracker` fails from now on, as to a store that went away mid-run; returns the calls."""
    calls = []

    def log_batch(*args, **kw):
        calls.append(args)
        raise ConnectionError("server gone\nsecond line")

    monkeypatch.setattr(tracker.client, "log_batch", log_batch)
    return calls


def test_mlflow_failure_mid_run_warns_once_and_sends_nothing_more(tmp_path, monkeypatch, caplog):
    """A server gone mid-run would hold every later write in MLflow's retries: one failure ends the record."""
    spec = tracking_spec("mlflow", f"sqlite:///{tmp_path}/mlruns.db", "tests")
    tracker = open_run(spec, "run", {"model": "x"}, None)
    calls = _failing_store(tracker, monkeypatch)
    for epoch in (1, 2, 3):
        tracker.on_epoch_end(None, {**_EPOCH_ROW, "epoch": epoch})
    tracker.flush()
    assert len(calls) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "fashionbench.track"]
    assert warnings == ["MLflow logging failed (ConnectionError: server gone); training goes on, "
                        "and this run's MLflow record stops here"]
    monkeypatch.undo()  # the store is back: the record is still ended, so it does not show RUNNING
    tracker.close()
    assert tracker.client.get_run(tracker.run_id).info.status == "FINISHED"
    assert tracker.client.get_metric_history(tracker.run_id, "train_loss") == []


def test_mlflow_failure_does_not_wait_on_a_server_that_is_gone(tmp_path, monkeypatch, no_http_proxy):
    """Ending the record after a failure tries a server only if it takes a connection."""
    spec = tracking_spec("mlflow", f"sqlite:///{tmp_path}/mlruns.db", "tests")
    tracker = open_run(spec, "run", {}, None)
    tracker.uri = f"http://127.0.0.1:{free_port()}"  # as if the run had logged to a server that then stopped
    _failing_store(tracker, monkeypatch)
    ended = []
    monkeypatch.setattr(tracker.client, "set_terminated", lambda *a: ended.append(a))
    tracker.on_epoch_end(None, _EPOCH_ROW)
    tracker.close("FAILED")
    assert ended == []
    tracker.closed, tracker.uri = False, spec.uri  # a store that answers: the one last try is made
    tracker.close("FAILED")
    assert ended == [(tracker.run_id, "FAILED")]


def test_tensorboard_scalars_images_hparams_and_projector(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, log_dir = tracked["result"], tracked["result"].run_dir / "tensorboard"
    assert tracked["tb"].log_dir == log_dir
    kinds = ("scalars", "images", "tensors", "histograms", "audio", "compressedHistograms")
    acc = EventAccumulator(str(log_dir), size_guidance=dict.fromkeys(kinds, 0))
    acc.Reload()
    tags = acc.Tags()
    steps = len(result.state.batches)
    loss = acc.Scalars("batch/loss")
    assert [e.step for e in loss] == list(range(1, steps + 1))
    assert [e.value for e in loss] == pytest.approx([b["loss"] for b in result.state.batches], rel=1e-5)
    assert len(acc.Scalars("batch/lr")) == steps
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "elapsed"):
        assert [e.step for e in acc.Scalars(f"epoch/{key}")] == list(range(1, EPOCHS + 1)), key
    final = acc.Scalars("final/test_accuracy")
    assert len(final) == 1 and final[0].value == pytest.approx(result.metrics["test_accuracy"])
    figures = [t for t in tags["images"] if t.startswith("figures/")]
    assert figures and len(figures) == len(list((result.run_dir / "figures").glob("*.png")))
    assert acc.Images(figures[0])[0].width > 0
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    start = HParamsPluginData.FromString(acc.summary_metadata["_hparams_/session_start_info"].plugin_data.content)
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(1e-3) and hparams["model"].string_value == "mlp_002"
    assert "_hparams_/experiment" in acc.summary_metadata
    assert sorted(p.name for p in log_dir.iterdir() if p.is_dir()) == [f"{EPOCHS:05d}"]  # no stray hparams folder
    projector = (log_dir / "projector_config.pbtxt").read_text()
    assert "test_embeddings" in projector and "sprite" in projector
    emb_dir = log_dir / f"{EPOCHS:05d}" / "test_embeddings"
    rows = (emb_dir / "tensors.tsv").read_text().splitlines()
    metadata = (emb_dir / "metadata.tsv").read_text().splitlines()
    assert len(rows) == len(metadata) > 0 and set(metadata) <= set(result.dataset.class_names)
    assert (emb_dir / "sprite.png").is_file()


def test_tensorboard_log_root_takes_the_run_name(tmp_path):
    spec = tracking_spec("tensorboard", str(tmp_path / "tb"))
    with tracked_group(spec, "study") as group:
        assert group is spec  # nothing to nest in TensorBoard
        tracker = open_run(group, "trial-3", {"model": "x"}, tmp_path / "run")
        assert not (tmp_path / "run").exists()  # the writer waits for training: a new run needs an empty folder
        tracker.on_train_begin(None)
        tracker.close()
    assert tracker.log_dir == tmp_path / "tb" / "trial-3" and any(tracker.log_dir.glob("events.out.tfevents.*"))
    log_group_result(group, {"x": 1.0}, [])  # a no-op


@pytest.mark.parametrize("kind", ["mlflow", "tensorboard"])
def test_missing_backend_says_how_to_install(kind, monkeypatch):
    monkeypatch.setitem(sys.modules, kind, None)  # importing it now fails
    with pytest.raises(ConfigError, match=rf"--track {kind} needs .*pip install 'fashionbench\[track\]'"):
        tracking_spec(kind)


def test_mlflow_logs_asynchronously_to_servers_only():
    from fashionbench.track._mlflow import _use_async

    assert _use_async("http://localhost:5000") and _use_async("https://mlflow.example.org")
    assert not _use_async("sqlite:////tmp/mlruns.db") and not _use_async("/tmp/mlruns")


def test_unknown_or_no_tracker():
    with pytest.raises(ConfigError, match="unknown tracker 'wandb'.*mlflow, tensorboard"):
        tracking_spec("wandb")
    assert tracking_spec(None) is None and tracking_spec("none") is None
    assert open_run(None, "run", {}, None) is None
    with tracked_group(None, "study") as group:
        assert group is None
    log_group_result(None, {"x": 1.0}, [])


@pytest.mark.parametrize("uri", ["bogus://x", "sqlite:////proc/x.db", "{folder}/plain-folder"])
def test_a_store_that_cannot_be_opened_is_refused_before_training(uri, tmp_path):
    """SQLite that cannot open its file, an unknown scheme, a plain folder (MLflow's file store): one line, at once."""
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot open the MLflow store .*--tracking-uri"):
        tracking_spec("mlflow", uri.format(folder=tmp_path), "tests")
    assert time.perf_counter() - start < 60  # MLflow alone retries an unopenable database for about 2 minutes


@pytest.fixture
def no_http_proxy(monkeypatch):
    """Connections to 127.0.0.1 go straight to it, whatever proxy the machine sets."""
    for var in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_a_server_that_is_not_there_is_refused_at_once(no_http_proxy):
    """MLflow alone retries a refused connection for about 2 minutes; one attempt says so."""
    import time

    uri = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"cannot reach the MLflow server at {uri} \(.*refused\); start it .*--tracking-uri"):
        tracking_spec("mlflow", uri, "tests")
    assert time.perf_counter() - start < 30


def test_a_server_that_answers_but_is_not_mlflow_is_a_store_error(no_http_proxy):
    """The connection check lets a listening server through; what it answers is MLflow's to judge."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # 501 to all
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ConfigError, match="cannot open the MLflow store http://127.0.0.1"):
            tracking_spec("mlflow", f"http://127.0.0.1:{server.server_address[1]}", "tests")
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_behind_a_proxy_is_left_to_the_proxy(monkeypatch):
    from fashionbench.track._mlflow import _check_reachable

    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    _check_reachable(uri)  # no connection tried: the proxy would make it
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(ConfigError, match="cannot reach the MLflow server"):
        _check_reachable(uri)
