"""ONNX export: parity with PyTorch for every registered model, metadata, int8, the .onnx Predictor, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install 'fashionbench[export]'")
pytest.importorskip("onnxscript", reason="pip install 'fashionbench[export]'")

from fashionbench.checkpoint import make_checkpoint
from fashionbench.cli import main
from fashionbench.data.normalize import Normalization
from fashionbench.errors import CheckpointError, ConfigError
from fashionbench.inference import Predictor
from fashionbench.models import create_model, list_models, model_info
from fashionbench.onnx_file import METADATA_KEY, load_onnx
from fashionbench.serve.export import NOT_EXPORTABLE, export_onnx
from fashionbench.utils import atomic_torch_save

# Exported in the full suite only (make test-all): 11-134 M parameters take tens of seconds each to trace.
HEAVY = {"resnet18_28px", "resnet18_tl", "resnet50_28px", "vgg16_bn_tl", "efficientnet_lite0_tl"}


def _params(name: str) -> list:
    if name in NOT_EXPORTABLE:
        return [pytest.param(name, marks=pytest.mark.skip(reason=f"not exportable: {NOT_EXPORTABLE[name]}"))]
    return [pytest.param(name, marks=pytest.mark.slow)] if name in HEAVY else [name]


def _checkpoint(tmp_path, name: str, data, norm: Normalization | None = None) -> str:
    torch.manual_seed(0)
    args = {"input_size": 32} if "input_size" in model_info(name).defaults else {}
    model = create_model(name, num_classes=10, **args).eval()
    norm = norm or Normalization("standardize", 0.286, 0.353)
    ckpt = make_checkpoint(model_name=name, model_args=args, state_dict=model.state_dict(),
                           class_names=data.class_names, normalization=norm,
                           config={"model": name, "model_args": args, "tta": ["flip"]}, epoch=1, temperature=0.8)
    path = tmp_path / "best.pt"
    atomic_torch_save(ckpt, path)
    return str(path)


@pytest.mark.parametrize("name", [p for n in list_models() for p in _params(n)])
def test_export_parity_every_model(name, tmp_path, band_data):
    data = band_data
    ckpt = _checkpoint(tmp_path, name, data)
    res = export_onnx(ckpt, tmp_path / "m.onnx", data=data)
    fp32 = res.checks[0]
    assert fp32.images == len(data.test_labels)
    assert fp32.max_abs_diff < 1e-3, f"{name}: ONNX logits differ from PyTorch by {fp32.max_abs_diff}"
    assert fp32.agreement == 1.0
    module = load_onnx(res.path)
    x = torch.rand(3, 1, 28, 28)
    assert module(x).shape == (3, 10)  # dynamic batch: traced with 2, runs with 3 and 1
    assert module(x[:1]).shape == (1, 10)


def test_per_pixel_normalization_goes_inside_the_graph(tmp_path, band_data):
    norm = Normalization.fit("per-pixel", band_data.train_images)
    res = export_onnx(_checkpoint(tmp_path, "mlp_002", band_data, norm), tmp_path / "pp.onnx", data=band_data)
    assert res.metadata["normalization"]["kind"] == "per-pixel"
    assert res.checks[0].max_abs_diff < 1e-4 and res.checks[0].agreement == 1.0


def test_metadata_makes_the_file_self_describing(fast_run, onnx_file, band_data):
    import onnx

    proto = onnx.load(str(onnx_file))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    run_temperature = torch.load(fast_run / "best.pt", weights_only=True)["temperature"]
    assert meta["model"] == "fastnet" and meta["class_names"] == band_data.class_names
    assert meta["temperature"] == pytest.approx(run_temperature) and meta["temperature"] != 1.0
    assert meta["normalization"]["kind"] == "standardize" and meta["normalization"]["applied"] == "inside the graph"
    assert meta["input"]["shape"] == ["N", 1, 28, 28] and meta["tta"] == []
    assert meta["fashionbench_version"] and meta["test_images"] == len(band_data.test_labels)
    measured = (Predictor.from_checkpoint(onnx_file).predict_logits(band_data.test_images).argmax(1)
                == band_data.test_labels).float().mean().item()
    assert meta["test_accuracy"] == pytest.approx(measured) and measured > 0.5
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value, "the batch dimension is dynamic"


def test_onnx_predictor_matches_the_checkpoint(fast_run, onnx_file, band_data):
    torch_pred = Predictor.from_checkpoint(fast_run, device="cpu", precision="fp32", tta="none")
    onnx_pred = Predictor.from_checkpoint(onnx_file)
    assert onnx_pred.info["format"] == "onnx" and onnx_pred.temperature == pytest.approx(torch_pred.temperature)
    x = band_data.test_images[:50]
    np.testing.assert_allclose(onnx_pred.predict_proba(x), torch_pred.predict_proba(x), atol=1e-5)
    # TTA outside a graph exported without it gives PyTorch's TTA result
    tta_onnx = Predictor.from_onnx(onnx_file, tta="flip+translate").predict_logits(x)
    tta_torch = Predictor.from_checkpoint(fast_run, device="cpu", precision="fp32", tta="flip+translate"
                                          ).predict_logits(x)
    assert torch.allclose(tta_onnx, tta_torch, atol=1e-4)


@pytest.mark.slow  # 10 traced views: about 7 s
def test_baked_tta_equals_pytorch_tta(fast_run, band_data, tmp_path):
    res = export_onnx(fast_run, tmp_path / "tta.onnx", tta=True, data=band_data)
    assert res.metadata["tta"] == ["flip", "translate"]
    assert res.checks[0].max_abs_diff < 1e-4 and res.checks[0].agreement == 1.0
    with pytest.raises(ConfigError, match="already averages"):
        Predictor.from_onnx(res.path, tta="flip")


def test_int8_is_smaller_and_close(fast_run, band_data, tmp_path):
    fp32 = export_onnx(fast_run, tmp_path / "fp32.onnx", data=band_data)
    res = export_onnx(fast_run, tmp_path / "int8.onnx", int8=True, data=band_data, n_calibration=200)
    import onnx

    ops = {n.op_type for n in onnx.load(str(res.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert res.size_bytes < fp32.size_bytes
    q = res.metadata["quantization"]
    assert q["calibration_images"] == 200 and "QDQ" in q["scheme"]
    int8_check = res.checks[1]
    assert int8_check.reference == "ONNX fp32" and int8_check.agreement > 0.9
    assert abs(int8_check.accuracy - fp32.checks[0].accuracy) < 0.05
    assert Predictor.from_checkpoint(res.path).predict(band_data.test_images[:4])[0]["label"] in band_data.class_names


def _idx_folder(folder, data):
    from fashionbench.data.idx import write_idx
    from fashionbench.data.sources import PARTS

    folder.mkdir(exist_ok=True)
    arrays = {"train_images": data.train_images, "train_labels": data.train_labels,
              "test_images": data.test_images, "test_labels": data.test_labels}
    for part, stem in PARTS.items():
        write_idx(folder / stem, arrays[part].numpy().astype(np.uint8))
    return folder


def test_export_cli_prints_the_check(fast_run, tmp_path, capsys, caplog, band_data):
    data_dir = _idx_folder(tmp_path / "idx", band_data)
    out = tmp_path / "cli.onnx"
    with caplog.at_level(logging.INFO):
        assert main(["export", str(fast_run), "--out", str(out), "--dataset", "mnist-format", "--data-dir",
                     str(data_dir)]) == 0
    chatter = [r.getMessage() for r in caplog.records if r.name.startswith(("onnx_ir", "onnxscript"))]
    assert not chatter, "the exporter's own INFO lines stay out of the user's terminal"
    text = capsys.readouterr().out
    assert out.is_file() and "max |logit difference|" in text and "top-1 agreement 100.00%" in text
    assert f"on {len(band_data.test_labels)} test images" in text


@pytest.mark.parametrize("args, match", [
    (["--out", "x.txt"], "must end in .onnx"),
    (["--format", "tflite"], "onnx is the one export format"),
    (["--calibration-images", "0", "--int8"], "at least 1"),
])
def test_export_bad_options(fast_run, args, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(fast_run), *args]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_onnx_files(tmp_path, capsys, onnx_file):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    for path, match in ((tmp_path / "missing.onnx", "not found"), (empty, "empty"), (junk, "could not be opened")):
        with pytest.raises(CheckpointError, match=match):
            Predictor.from_checkpoint(path)
    assert main(["predict", str(junk), str(onnx_file)]) == 2
    assert "could not be opened as an ONNX model" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="already an ONNX file"):
        export_onnx(onnx_file)


def test_export_keeps_an_existing_out_file_unless_told(fast_run, tmp_path, capsys):
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"someone else's model")
    assert main(["export", str(fast_run), "--out", str(mine)]) == 2
    assert "--overwrite" in capsys.readouterr().err and mine.read_bytes() == b"someone else's model"
    assert main(["export", str(fast_run), "--out", str(tmp_path / "new.onnx"), "--per-tensor"]) == 2
    assert "add --int8" in capsys.readouterr().err and not (tmp_path / "new.onnx").exists()


def test_onnx_without_our_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["logits"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(CheckpointError, match="without fashionbench metadata"):
        Predictor.from_checkpoint(path)


def test_export_folds_every_batchnorm_of_fastnet(onnx_file):
    import onnx

    ops = {n.op_type for n in onnx.load(str(onnx_file)).graph.node}
    assert "Conv" in ops and "MaxPool" in ops
    assert "BatchNormalization" not in ops, "FastNet's BatchNorms, also those behind a max-pool, fold into the convs"
