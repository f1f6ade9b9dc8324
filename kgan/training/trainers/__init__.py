"""Trainers: ``keras.Model`` subclasses, each owning one ``train_step`` and its optimizers."""
