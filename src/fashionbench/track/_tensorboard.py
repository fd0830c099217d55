"""The TensorBoard backend of `fashionbench.track`: event files that `tensorboard --logdir` reads."""

from __future__ import annotations

import json
from pathlib import Path

from .. import runs
from . import EPOCH_KEYS, RunTracker, TrackingSpec, _finite_number, final_metrics, flatten


class TensorBoardTracker(RunTracker):
    """Scalars batch/loss, batch/lr (step = global step) and epoch/<key> (step = epoch); in
    `log_result` the hparams with the final metrics, the figures as images and the test
    embeddings for the projector. The writer opens at the start of training (after the run
    folder is claimed: a folder must be empty for a new run)."""

    def __init__(self, spec: TrackingSpec, name: str, config: dict, run_dir: Path | None) -> None:
        super().__init__(spec, name, config, run_dir)
        if spec.uri:
            self.log_dir = Path(spec.uri) / name
        elif run_dir is not None:
            self.log_dir = Path(run_dir) / runs.TENSORBOARD
        else:  # a run without a folder (save=False): the current folder, by run name
            self.log_dir = Path("tensorboard") / name
        self._writer = None

    def writer(self, purge_step: int | None = None):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)
        return self._writer

    def on_train_begin(self, state) -> None:
        # a resumed run drops the batch points the interrupted one wrote after its last checkpoint
        w = self.writer(purge_step=state.step + 1 if state is not None and state.step else None)
        w.add_text("config", "```\n" + json.dumps(self.config, indent=1, default=str) + "\n```")

    def on_batch_end(self, state, row: dict) -> None:
        w, step = self.writer(), int(row["step"])
        w.add_scalar("batch/loss", float(row["loss"]), step)
        if _finite_number(row.get("lr")):
            w.add_scalar("batch/lr", float(row["lr"]), step)

    def on_epoch_end(self, state, row: dict) -> None:
        w, epoch = self.writer(), int(row["epoch"])
        for k in EPOCH_KEYS:
            if _finite_number(row.get(k)):  # NaN without a validation split
                w.add_scalar(f"epoch/{k}", float(row[k]), epoch)

    def on_train_end(self, state) -> None:
        if self._writer is not None:
            self._writer.flush()

    def log_result(self, result) -> None:
        w, step = self.writer(), int(result.metrics.get("epochs") or 0)
        config = result.config.to_dict() if hasattr(result.config, "to_dict") else self.config
        hparams = {k: v for k, v in flatten(config).items() if isinstance(v, int | float | str | bool)}
        final = {f"final/{k}": v for k, v in final_metrics(result.metrics).items()}
        w.add_hparams(hparams, final, run_name=".", global_step=step)  # ".": this log dir, no subfolder
        run_dir = Path(result.run_dir) if result.run_dir is not None else None
        if run_dir is not None and run_dir.is_dir():
            self._log_figures(w, run_dir, step)
            self._log_embeddings(w, run_dir, result, step)
        w.flush()

    def _log_figures(self, w, run_dir: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        for png in sorted((run_dir / runs.FIGURES).glob("*.png")):
            with Image.open(png) as im:
                w.add_image(f"figures/{png.stem}", np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def _log_embeddings(self, w, run_dir: Path, result, step: int) -> None:
        """The report's test-sample embeddings (input of the classifier head) for the projector."""
        import numpy as np
        import torch

        path = run_dir / runs.ARTIFACTS
        if not path.is_file():
            return
        with np.load(path, allow_pickle=False) as z:
            if not {"embeddings", "tsne_index", "tsne_labels"} <= set(z.files):
                return  # a model without a Linear head: no embeddings
            emb, idx, labels = z["embeddings"].astype(np.float32), z["tsne_index"], z["tsne_labels"]
        if len(emb) != len(idx) or not len(emb):
            return
        names = list(result.metrics.get("class_names") or [])
        metadata = [names[int(y)] if 0 <= int(y) < len(names) else str(int(y)) for y in labels]
        images = getattr(getattr(result, "dataset", None), "test_images", None)
        label_img = None
        if images is not None and int(idx.max()) < len(images):
            label_img = images[torch.as_tensor(idx, dtype=torch.long)].float().div(255).unsqueeze(1)
        w.add_embedding(torch.from_numpy(emb), metadata=metadata, label_img=label_img, global_step=step,
                        tag="test_embeddings")

    def close(self, status: str = "FINISHED") -> None:
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            if status != "FINISHED":
                self._writer.add_text("status", status)
            self._writer.close()
