"""Dataset files, splits, normalization and batched augmentation."""
