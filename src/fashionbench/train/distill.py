"""Knowledge distillation through the targets: each training image's target is a mix of a
teacher's calibrated probabilities and its true label, trained with the usual cross-entropy
(which takes probability targets; label smoothing still applies on top).

The teacher's probabilities are computed once, before training, with flip TTA and the teacher's
own fitted temperature (Hinton et al. 2015 soften with a temperature; a calibrated teacher is
that softening chosen by data rather than by hand). They are flip-invariant, so they stay right
for the flipped copies the fast recipes train on; under stronger augmentation they are the
teacher's view of the un-augmented image.
"""

from __future__ import annotations

import logging

import torch

from ..errors import ConfigError
from ..inference import Predictor

log = logging.getLogger(__name__)


def teacher_targets(teacher: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int, weight: float,
                    device: torch.device, batch_size: int = 2000) -> torch.Tensor:
    """(N, C) float targets: weight * softmax(teacher logits / T) + (1 - weight) * one-hot(labels)."""
    predictor = Predictor.from_checkpoint(teacher, device=str(device), tta="flip", batch_size=batch_size)
    if predictor.num_classes != num_classes:
        raise ConfigError(f"the teacher {teacher} has {predictor.num_classes} classes but the dataset has "
                          f"{num_classes}; distill from a model of the same dataset")
    probs = torch.softmax(predictor.predict_logits(images) / predictor.temperature, 1).to(device)
    agree = (probs.argmax(1) == labels).float().mean().item()
    log.info("teacher %s (T %.3f) agrees with %.2f%% of the %d training labels", teacher, predictor.temperature,
             100 * agree, len(labels))
    onehot = torch.nn.functional.one_hot(labels, num_classes).float()
    return weight * probs + (1 - weight) * onehot
