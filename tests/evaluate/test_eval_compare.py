"""`fashionbench compare`: grouping of seeds, McNemar against the best run, HTML and Markdown."""

import shutil

import pytest

from fashionbench.cli import main
from fashionbench.evaluate.compare import compare_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_run, eval_dataset, train_tiny_run):
    """A folder of four runs: the 2-epoch run, two seeds of a 1-epoch config, one low-lr run."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    root.mkdir()
    shutil.copytree(tiny_run, root / "mlp-e2-s0")
    for seed in (1, 2):
        train_tiny_run(root / f"mlp-e1-s{seed}", eval_dataset, epochs=1, seed=seed)
    train_tiny_run(root / "mlp-e1-lr-s0", eval_dataset, epochs=1, lr=1e-5)
    return root


def test_grouping_and_significance(runs):
    c = compare_runs([runs])
    assert len(c.runs) == 4
    sizes = sorted(len(g.runs) for g in c.groups)
    assert sizes == [1, 1, 2]
    labels = {g.label for g in c.groups}
    assert any("lr=1e-05" in lab for lab in labels) and any("epochs=2" in lab for lab in labels)
    assert c.best.acc == max(r.acc for r in c.runs)
    assert all(r.test is not None for r in c.runs if r is not c.best)
    worst = min(c.runs, key=lambda r: r.acc)
    assert worst.test["p_value"] < 0.05  # lr 1e-5 for one epoch is far worse than the best run


def test_compare_command_writes_html_and_markdown(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "compare.md").read_text()
    assert md in printed
    assert len([line for line in md.splitlines() if line.startswith("| mlp_002")]) == 3  # configurations
    assert len([line for line in md.splitlines() if line.startswith("| mlp-")]) == 4  # runs
    assert "±" in md and "best run" in md
    page = (out / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and 'id="compare-groups"' in page
    # never overwritten unasked
    before = (out / "compare.md").read_bytes()
    assert main(["compare", str(runs), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "compare.md").read_bytes() == before
    assert main(["compare", str(runs), "--out", str(out), "--overwrite"]) == 0


def test_compare_single_runs_listed_explicitly(runs, tmp_path):
    assert main(["compare", str(runs / "mlp-e2-s0"), str(runs / "mlp-e1-s1"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "compare.md").is_file()


def test_compare_bad_input(runs, tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path)]) == 2
    assert "no runs to compare" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "neither a run folder nor a folder of runs" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(runs / "mlp-e1-s1", broken)
    (broken / "predictions.npz").unlink()
    assert main(["compare", str(runs / "mlp-e2-s0"), str(broken), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "predictions.npz" in err and err.count("\n") == 1
    assert not (tmp_path / "compare.html").exists()


def test_folder_of_runs_skips_unfinished_runs(runs, tmp_path, caplog):
    root = tmp_path / "runs"
    shutil.copytree(runs / "mlp-e2-s0", root / "done")
    (root / "training").mkdir()
    (root / "training" / "config.json").write_text((runs / "mlp-e2-s0" / "config.json").read_text())
    c = compare_runs([root])
    assert [r.data.name for r in c.runs] == ["done"]
    assert "unfinished" in caplog.text and "training" in caplog.text
