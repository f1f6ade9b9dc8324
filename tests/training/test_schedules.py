"""Tests for kgan.training.schedules: LinearDecay against the reference's linear LR rule."""

import keras
import numpy as np
import tensorflow as tf

from kgan.training.schedules import LinearDecay

LR, EPOCHS, EPOCHS_DECAY, STEPS_PER_EPOCH = 2e-4, 3, 2, 4


def _reference_lr(epoch):
    """pytorch-CycleGAN-and-pix2pix ``lambda_rule`` with epoch_count=1 (epochs from 0)."""
    return LR * (1.0 - max(0, epoch + 1 - EPOCHS) / float(EPOCHS_DECAY + 1))


class LinearDecayTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.schedule = LinearDecay(LR, EPOCHS, EPOCHS_DECAY, STEPS_PER_EPOCH)

    def test_matches_reference_every_step(self):
        for step in range((EPOCHS + EPOCHS_DECAY) * STEPS_PER_EPOCH):
            epoch = step // STEPS_PER_EPOCH
            self.assertAllClose(self.schedule(step), _reference_lr(epoch), rtol=1e-6,
                                msg=f"step {step}")

    def test_constant_then_linear_steps(self):
        lrs = [float(self.schedule(e * STEPS_PER_EPOCH)) for e in range(EPOCHS + EPOCHS_DECAY)]
        # Epochs 0..2 at the initial rate; the 2 decay epochs are 2/3 and 1/3 of it.
        self.assertAllClose(lrs, [LR, LR, LR, LR * 2 / 3, LR / 3], rtol=1e-6)
        # The rate changes only at epoch boundaries.
        self.assertAllClose(self.schedule(EPOCHS * STEPS_PER_EPOCH - 1), LR)
        self.assertAllClose(self.schedule(EPOCHS * STEPS_PER_EPOCH + STEPS_PER_EPOCH - 1),
                            LR * 2 / 3)
        # The last epoch runs at lr / (epochs_decay + 1), not 0, as in the reference.
        last = (EPOCHS + EPOCHS_DECAY) * STEPS_PER_EPOCH - 1
        self.assertAllClose(self.schedule(last), LR / (EPOCHS_DECAY + 1))

    def test_accepts_int64_step_tensor_in_tf_function(self):
        lr = tf.function(self.schedule)(tf.constant(4 * STEPS_PER_EPOCH, tf.int64))
        self.assertAllClose(lr, LR / 3)

    def test_serialization_round_trip(self):
        config = keras.optimizers.schedules.serialize(self.schedule)
        self.assertIn("kgan", str(config))
        restored = keras.optimizers.schedules.deserialize(config)
        self.assertIsInstance(restored, LinearDecay)
        self.assertEqual(restored.get_config(), self.schedule.get_config())
        steps = np.arange((EPOCHS + EPOCHS_DECAY) * STEPS_PER_EPOCH)
        self.assertAllClose([restored(s) for s in steps], [self.schedule(s) for s in steps])

    def test_adam_follows_optimizer_iterations(self):
        optimizer = keras.optimizers.Adam(learning_rate=self.schedule, beta_1=0.5)
        variable = keras.Variable(np.zeros(2, "float32"))
        optimizer.build([variable])
        for epoch in range(EPOCHS + EPOCHS_DECAY):
            optimizer.iterations.assign(epoch * STEPS_PER_EPOCH + 1)
            self.assertAllClose(optimizer.learning_rate, _reference_lr(epoch), rtol=1e-6)
        # Applying gradients advances the counter, and the rate with it.
        optimizer.iterations.assign(EPOCHS * STEPS_PER_EPOCH - 1)
        optimizer.apply_gradients([(tf.ones(2), variable)])
        self.assertEqual(int(optimizer.iterations), EPOCHS * STEPS_PER_EPOCH)
        self.assertAllClose(optimizer.learning_rate, _reference_lr(EPOCHS))


if __name__ == "__main__":
    tf.test.main()
