"""Training: config, optimizers/losses/schedules by name, the engine and callbacks."""
