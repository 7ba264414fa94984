"""Training, evaluation and prediction: one loop for one process and for torchrun."""
