"""NoGAN phase 3: a short GAN phase with fastai's adaptive generator/critic switching.

``AdaptiveGANSwitcher(critic_thresh=0.65)``: training starts with the critic, which keeps
training until its last loss falls below ``critic_thresh``; then the generator takes one step
and the critic takes over again. The mode is a variable and the switch a ``tf.cond`` inside
the compiled step, so switching never retraces. Under Mirrored/MultiWorkerMirroredStrategy the
cond runs in the cross-replica context (``kgan.training.distribute.synchronized_cond``), because a
branch that applies gradients synchronises replicas; the idle network's optimizer is never
touched.
"""

import tensorflow as tf

from kgan.training import distribute, losses
from kgan.training.trainers.base import GANTrainer
from kgan.training.trainers.critic import critic_loss_and_accuracy


def next_generator_mode(generator_mode, critic_loss, critic_thresh):
    """The switcher's rule: after a generator step, back to the critic; after a critic step,
    to the generator once the critic's loss is below ``critic_thresh``."""
    return tf.logical_and(tf.logical_not(generator_mode), critic_loss < critic_thresh)


def _global_mean(per_example):
    """Mean over the global batch (all replicas), so every replica switches alike."""
    mean = tf.reduce_mean(per_example)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return mean
    return context.all_reduce(tf.distribute.ReduceOp.MEAN, mean)


class NoGANTrainer(GANTrainer):
    """The GAN phase: generator loss = w_adv * BCE(critic(fake), real) + w_content * content.

    Args:
        generator: the pretrained generator.
        critic: the pretrained critic.
        content_loss: loss object with ``__call__(prediction, target)`` per example.
        weights_gen: (adversarial weight, content weight), fastai's ``weights_gen``.
        critic_thresh: the switcher's threshold on the critic loss.
    """

    def __init__(self, generator, critic, content_loss, weights_gen=(1.0, 50.0),
                 critic_thresh=0.65, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        self.content_loss = content_loss
        self.weights_gen = tuple(float(w) for w in weights_gen)
        self.critic_thresh = float(critic_thresh)
        # Replicas hold the same switcher state: each update writes the first replica's value
        # (the losses are all-reduced first, so that value is the global one).
        state = dict(trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.generator_mode = tf.Variable(False, name="generator_mode", **state)
        self.last_critic_loss = tf.Variable(0.0, name="last_critic_loss", **state)
        self.last_generator_loss = tf.Variable(0.0, name="last_generator_loss", **state)
        self.steps = tf.Variable(0, dtype=tf.int64, name="steps", **state)

    def optimizer_variables(self):
        return [(self.g_optimizer, self.generator.trainable_variables),
                (self.d_optimizer, self.critic.trainable_variables)]

    @property
    def step_counter(self):
        # Each step trains either network, so count steps here rather than optimizer updates.
        return self.steps

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _generator_step(self, degraded, clean, global_batch):
        with tf.GradientTape() as tape:
            fake = self.generator(degraded, training=True)
            adversarial = losses.generator_loss(self.critic(fake, training=False), "vanilla")
            content = self.content_loss(fake, clean)
            per_example = self.weights_gen[0] * adversarial + self.weights_gen[1] * content
            loss = losses.reduce_global(per_example, global_batch)
        self.apply_gradients(tape, loss, self.generator.trainable_variables, self.g_optimizer)
        self.last_generator_loss.assign(_global_mean(per_example))

    def _critic_step(self, degraded, clean, global_batch):
        fake = tf.stop_gradient(self.generator(degraded, training=False))
        with tf.GradientTape() as tape:
            per_example, _ = critic_loss_and_accuracy(self.critic, clean, fake)
            loss = losses.reduce_global(per_example, global_batch)
        self.apply_gradients(tape, loss, self.critic.trainable_variables, self.d_optimizer)
        self.last_critic_loss.assign(_global_mean(per_example))

    def train_step(self, data):
        degraded, clean = data
        global_batch = self.global_batch_size(degraded)
        generator_mode = self.generator_mode.read_value()
        distribute.synchronized_cond(generator_mode, self._generator_step, self._critic_step,
                                     args=(degraded, clean, global_batch))
        self.generator_mode.assign(next_generator_mode(generator_mode, self.last_critic_loss,
                                                       self.critic_thresh))
        self.steps.assign_add(1)
        return {"generator": self.last_generator_loss.read_value(),
                "critic": self.last_critic_loss.read_value(),
                "critic_step": tf.cast(tf.logical_not(generator_mode), tf.float32),
                "lr": self.current_lr(self.g_optimizer)}

    def test_step(self, data):
        degraded, clean = data
        fake = self.generator(degraded, training=False)
        loss, accuracy = critic_loss_and_accuracy(self.critic, clean, fake, training=False)
        return {"content": tf.reduce_mean(self.content_loss(fake, clean)),
                "critic": tf.reduce_mean(loss), "accuracy": tf.reduce_mean(accuracy)}

    def translate(self, degraded, clean):
        return {"restore": [degraded, self.generator(degraded, training=False), clean]}

    def generators(self):
        return {"generator": self.generator}
