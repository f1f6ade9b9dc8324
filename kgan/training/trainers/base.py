"""What every kgan trainer shares: optimizer building, loss scaling, global-batch reduction
and per-step seeds. A trainer never parses flags."""

import keras
import tensorflow as tf

from kgan.training import distribute, losses


@keras.saving.register_keras_serializable(package="kgan")
class Adam(keras.optimizers.Adam):
    """Adam as ``torch.optim.Adam`` computes it (the reference's optimizer), run as one fused
    ``ResourceApplyAdam`` kernel per variable instead of ~12 elementwise ops.

    torch adds its epsilon (default 1e-8) to the bias-corrected ``sqrt(v / (1 - b2^t))``:
    ``w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``. The kernel (and Keras'
    own Adam) adds it to the raw ``sqrt(v)``: ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m /
    (sqrt(v) + eps)``, so the kernel is given ``eps * sqrt(1 - b2^t)``, which makes the two
    equal. Keras' form with its 1e-7 is 12x (t = 1,000) to 300x (t = 1) torch's epsilon in
    torch's terms, which damps the steps of weights whose gradients are below ~1e-6 (on the
    peer benchmark, docs/results.md, the difference in quality was within seed noise).
    AMSGrad, sparse gradients and non-float32 variables take Keras' own path (Keras' form).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        handle = getattr(variable, "handle", None)
        if (self.amsgrad or isinstance(gradient, tf.IndexedSlices) or handle is None
                or variable.dtype != tf.float32):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m = self._momentums[index].value
        v = self._velocities[index].value
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1 = tf.cast(self.beta_1, tf.float32)
        beta_2 = tf.cast(self.beta_2, tf.float32)
        tf.raw_ops.ResourceApplyAdam(
            var=handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, tf.float32) * tf.sqrt(1.0 - tf.pow(beta_2, step)),
            grad=tf.cast(gradient, tf.float32), use_locking=False, use_nesterov=False)


def adam(learning_rate, beta_1=0.5, beta_2=0.999, mixed_float16=None):
    """Adam as the reference uses it (fused update, see ``Adam``), wrapped in a
    ``LossScaleOptimizer`` under float16.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        beta_1, beta_2: Adam betas.
        mixed_float16: wrap for loss scaling; default: when the global policy is mixed_float16.

    Returns:
        A Keras optimizer.
    """
    optimizer = Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)
    if mixed_float16 is None:
        mixed_float16 = keras.mixed_precision.global_policy().name == "mixed_float16"
    if mixed_float16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class GANTrainer(keras.Model):
    """Base class: a ``keras.Model`` whose ``train_step`` updates several networks, each with
    its own optimizer. Subclasses define ``networks()`` and ``train_step``.

    The same ``train_step`` is driven by ``fit`` or by ``kgan.training.distribute.CustomLoop``
    (under ``strategy.run``), so nothing in it may depend on which driver calls it.
    """

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Sets the generator and discriminator (critic) optimizers and builds them in scope.

        Args:
            g_optimizer: optimizer of the generator(s); None where no generator trains.
            d_optimizer: optimizer of the discriminator(s) or critic; None where none trains.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``jit_compile``).
        """
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.build_optimizers()

    def build_optimizers(self):
        """Builds every optimizer on its variables now, inside the current strategy scope
        (several optimizers in one step fail under MirroredStrategy otherwise)."""
        for optimizer, variables in self.optimizer_variables():
            optimizer.build(variables)

    def optimizer_variables(self):
        """(optimizer, trainable variables) pairs; subclasses override."""
        raise TypeError(f"{type(self).__name__} must define optimizer_variables().")

    def on_train_start(self):
        """Called once the weights are final (restored or loaded) and before the first step,
        in the strategy's scope, by ``kgan.training.loop.train_loop`` and ``kgan.bench``:
        trainers that derive state from frozen weights make it here. Default: nothing."""

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
        """Differentiates ``loss`` and applies the update; returns the gradients.

        Under a ``LossScaleOptimizer`` the loss is scaled, the gradients unscaled, and a step
        whose gradients overflow on *any* replica is skipped on every replica (the scale is
        halved), so replicas never diverge. Keras' own ``LossScaleOptimizer.apply_gradients``
        is used for its state only: under MirroredStrategy it decides on the first replica's
        gradients alone, so an overflow on another replica writes inf into the weights.
        """
        grads = GANTrainer.compute_gradients(tape, loss, variables, optimizer)
        return GANTrainer.apply_computed_gradients(grads, variables, optimizer)

    @staticmethod
    def compute_gradients(tape, loss, variables, optimizer):
        """The gradients of ``loss``, still loss-scaled under a ``LossScaleOptimizer`` (the
        backward pass starts from the scale; the loss is recorded unscaled). Gradients of
        several losses may be summed before ``apply_computed_gradients``."""
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return tape.gradient(loss, variables)
        scale = tf.convert_to_tensor(optimizer.dynamic_scale)
        return tape.gradient(loss, variables, output_gradients=scale)

    @staticmethod
    def apply_computed_gradients(grads, variables, optimizer):
        """Applies ``compute_gradients``' output (unscaling and skipping overflowing steps
        under loss scaling, see ``apply_gradients``); returns the unscaled gradients."""
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer.apply_gradients(zip(grads, variables))
            return grads
        scale = tf.convert_to_tensor(optimizer.dynamic_scale)
        finite = finite_on_every_replica(grads)
        grads = [None if g is None else g / scale for g in grads]

        def apply(grads):
            optimizer.inner_optimizer.apply_gradients(zip(grads, variables))

        distribute.synchronized_cond(finite, apply, lambda grads: None, args=(grads,))
        update_loss_scale(optimizer, finite)
        return grads

    def sequential_gradients(self, parts, inputs, variables, optimizer, global_batch):
        """Sums the gradients of several losses, one forward/backward pass at a time.

        Each part's inputs wait (a control dependency) for the previous part's gradients, so
        only one part's activations are alive at once: the peak memory of the largest part,
        not of all of them (a CycleGAN generator update keeps 2 generator passes alive
        instead of 6). The sum equals the gradient of the summed loss up to float summation
        order.

        Args:
            parts: callables taking ``inputs`` and returning ``(terms, extra)``: a dict of
                per-example loss terms and anything to pass on. Called under a tape.
            inputs: a list of tensors, gated and passed to every part.
            variables: the variables to differentiate.
            optimizer: the optimizer (for loss scaling).
            global_batch: the global batch size the terms are reduced over.

        Returns:
            (summed gradients, ``compute_gradients`` style), dict of all terms, list of extras.
        """
        total, terms, extras = None, {}, []
        for part in parts:
            gated = list(inputs)
            if total is not None:
                with tf.control_dependencies(
                        [tf.group([g for g in total if g is not None])]):
                    gated = [tf.identity(x) for x in inputs]
            with tf.GradientTape() as tape:
                part_terms, extra = part(*gated)
                loss = losses.reduce_global(tf.add_n(list(part_terms.values())), global_batch)
            grads = self.compute_gradients(tape, loss, variables, optimizer)
            terms.update(part_terms)
            extras.append(extra)
            if total is None:
                total = list(grads)
            else:
                total = [a if b is None else b if a is None else a + b
                         for a, b in zip(total, grads)]
        return total, terms, extras

    def current_lr(self, optimizer):
        """The learning rate an optimizer uses at its current iteration."""
        lr = optimizer.learning_rate
        return tf.cast(lr, tf.float32)


def finite_on_every_replica(grads):
    """True when every gradient is finite on every replica (the same answer everywhere)."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return finite
    overflows = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                   1.0 - tf.cast(finite, tf.float32))
    return tf.equal(overflows, 0.0)


def update_loss_scale(optimizer, finite):
    """Keras' dynamic loss-scale rule: halve the scale after an overflow, double it after
    ``dynamic_growth_steps`` finite steps in a row."""
    counter = tf.cast(tf.convert_to_tensor(optimizer.step_counter), tf.int64) + 1
    scale = tf.convert_to_tensor(optimizer.dynamic_scale)
    grow = tf.logical_and(finite, counter >= optimizer.dynamic_growth_steps)
    new_scale = tf.where(finite, tf.where(grow, scale * 2.0, scale), scale * 0.5)
    new_counter = tf.where(tf.logical_and(finite, tf.logical_not(grow)), counter, 0)
    distribute.assign_on_every_replica(
        [(optimizer.step_counter, tf.cast(new_counter, optimizer.step_counter.dtype)),
         (optimizer.dynamic_scale, new_scale)])
