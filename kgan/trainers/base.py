"""What every kgan trainer shares: optimizer building, loss scaling, global-batch reduction
and per-step seeds. A trainer never parses flags."""

import keras
import tensorflow as tf


def adam(learning_rate, beta_1=0.5, beta_2=0.999, mixed_float16=None):
    """Adam as the reference uses it, wrapped in a ``LossScaleOptimizer`` under float16.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        beta_1, beta_2: Adam betas.
        mixed_float16: wrap for loss scaling; default: when the global policy is mixed_float16.

    Returns:
        A Keras optimizer.
    """
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)
    if mixed_float16 is None:
        mixed_float16 = keras.mixed_precision.global_policy().name == "mixed_float16"
    if mixed_float16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class GANTrainer(keras.Model):
    """Base class: a ``keras.Model`` whose ``train_step`` updates several networks, each with
    its own optimizer. Subclasses define ``networks()`` and ``train_step``.

    The same ``train_step`` is driven by ``fit`` or by ``kgan.distribute.CustomLoop`` (under
    ``strategy.run``), so nothing in it may depend on which driver calls it.
    """

    def build_optimizers(self):
        """Builds every optimizer on its variables now, inside the current strategy scope
        (several optimizers in one step fail under MirroredStrategy otherwise)."""
        for optimizer, variables in self.optimizer_variables():
            optimizer.build(variables)

    def optimizer_variables(self):
        """(optimizer, trainable variables) pairs; subclasses override."""
        raise TypeError(f"{type(self).__name__} must define optimizer_variables().")

    @property
    def step_counter(self):
        """Steps taken so far: the first optimizer's iteration count (checkpointed)."""
        return self.optimizer_variables()[0][0].iterations

    def global_batch_size(self, images):
        """The global batch: local batch times replicas in sync."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return tf.shape(images)[0] * replicas

    def step_seed(self, salt):
        """A stateless seed unique to this step, replica and purpose (``salt``)."""
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        step = tf.cast(self.step_counter, tf.int32)
        return tf.stack([step * 7919 + tf.cast(salt, tf.int32),
                         tf.cast(replica_id, tf.int32) + self.seed_offset])

    seed_offset = 0

    @staticmethod
    def apply_gradients(tape, loss, variables, optimizer):
        """Differentiates ``loss`` (scaled first under a LossScaleOptimizer, which unscales
        and skips non-finite steps in ``apply_gradients``) and applies the update."""
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = tape.gradient(optimizer.scale_loss(loss), variables)
        else:
            grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return grads

    def current_lr(self, optimizer):
        """The learning rate an optimizer uses at its current iteration."""
        lr = optimizer.learning_rate
        return tf.cast(lr, tf.float32)
