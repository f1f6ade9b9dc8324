"""kgan.training.trainers.critic: the critic pretrained as a real-vs-generated classifier; under
mixed precision its steps run the frozen generator's inference copy once ``on_train_start``
made it (the same update as with the generator, nothing more saved; float32 makes none), and
``train_loop`` makes it after restoring a checkpoint, so the copy holds the restored weights."""

import keras
import numpy as np
import tensorflow as tf
from helpers import randomise_batch_norms

from kgan.models import build_generator, critic
from kgan.training.loop import LoopOptions, train_loop
from kgan.training.trainers.base import adam
from kgan.training.trainers.critic import CriticPretrainer


def _batch_norm_generator(seed):
    """A small DeOldify generator whose batch norms have statistics far from the identity."""
    tf.keras.utils.set_random_seed(seed)
    generator = build_generator("deoldify_stable", width=4, wide_nf=32)
    randomise_batch_norms(generator, seed, affine=False)
    return generator


def _trainer(seed, policy="mixed_bfloat16"):
    keras.mixed_precision.set_global_policy(policy)
    try:
        generator = _batch_norm_generator(seed)
        tf.keras.utils.set_random_seed(100)
        trainer = CriticPretrainer(generator, critic(nf=4, n_blocks=1, dropout=0.0))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    trainer.compile(adam(1e-3, 0.9, 0.99))
    return trainer


def _data():
    rng = np.random.default_rng(3)
    return tuple(tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32"))
                 for _ in range(2))


def _checkpoint_keys(trainer, prefix):
    path = tf.train.Checkpoint(trainer=trainer).save(prefix)
    return {name.replace("save_counter", "") for name, _ in tf.train.list_variables(path)}


def _mean_difference(a, b):
    return float(tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))))


class CriticPretrainTest(tf.test.TestCase):

    def test_critic_learns_to_separate_real_from_generated(self):
        tf.keras.utils.set_random_seed(0)
        generator = build_generator("unet_128", ngf=4, norm="none", use_dropout=False)
        trainer = CriticPretrainer(generator, critic(nf=8))
        trainer.compile(adam(1e-3, 0.9, 0.99))
        trainer.on_train_start()
        clean = tf.random.uniform((4, 128, 128, 3), -1, 1)
        data = (clean, clean)
        logs = [trainer.train_step(data) for _ in range(30)]
        self.assertLess(float(logs[-1]["critic"]), float(logs[0]["critic"]))
        self.assertGreater(float(logs[-1]["accuracy"]), 0.9)

    def test_steps_with_the_inference_copy_update_the_critic_as_the_generator_does(self):
        plain, copied = _trainer(0), _trainer(0)
        saved = len(copied.weights)
        directory = self.get_temp_dir()
        keys_before = _checkpoint_keys(copied, directory + "/before")
        copied.on_train_start()
        self.assertIsNotNone(copied._frozen.generator)
        self.assertIsNone(plain._frozen.generator)
        self.assertEqual(len(copied.weights), saved)  # the copy is not tracked nor saved
        self.assertEqual(_checkpoint_keys(copied, directory + "/after"), keys_before)
        data = _data()
        logs_plain, logs_copied = plain.train_step(data), copied.train_step(data)
        # bf16 rounding in another order: 3e-4 on the loss, 0.011 on the mean generated
        # pixel; a copy without its folded shifts is 4.5e-3 and 0.09 off (test below).
        self.assertAllClose(logs_copied["critic"], logs_plain["critic"], atol=1.5e-3)
        self.assertLess(_mean_difference(copied._frozen.generator(data[0]),
                                         plain.generator(data[0], training=False)), 0.03)
        # The copy is what runs (so the comparison above could fail).
        calls, copy = [], copied._frozen.generator
        copied._frozen.generator = (
            lambda images, **kwargs: calls.append(images.shape) or copy(images, **kwargs))
        copied.train_step(data)
        self.assertEqual(calls, [data[0].shape])

    def test_a_wrong_copy_breaks_the_loss_bound(self):
        plain, copied = _trainer(0), _trainer(0)
        copied.on_train_start()
        for layer in copied._frozen.generator.layers:
            if isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
                layer.bias.assign(tf.zeros_like(layer.bias))  # the folded shifts dropped
        data = _data()
        self.assertGreater(_mean_difference(copied._frozen.generator(data[0]),
                                            plain.generator(data[0], training=False)), 0.03)
        self.assertNotAllClose(copied.train_step(data)["critic"],
                               plain.train_step(data)["critic"], atol=1.5e-3)

    def test_float32_steps_run_the_generator_itself(self):
        trainer = _trainer(0, "float32")
        trainer.on_train_start()
        self.assertIsNone(trainer._frozen.generator)

    def test_train_loop_makes_the_copy_after_restoring_the_checkpoint(self):
        run_dir = self.get_temp_dir() + "/run"
        options = LoopOptions(save_freq=1, verbose=0, driver="fit")
        dataset = tf.data.Dataset.from_tensors(_data()).repeat()
        first = _trainer(0)
        train_loop(first, dataset, tf.distribute.get_strategy(), run_dir, 1, 1, options)
        resumed = _trainer(1)  # other generator weights until the checkpoint restores
        x = _data()[0]
        self.assertGreater(_mean_difference(resumed.generator(x, training=False),
                                            first.generator(x, training=False)), 0.1)
        train_loop(resumed, dataset, tf.distribute.get_strategy(), run_dir, 1, 2, options)
        expected = first.generator(x, training=False)
        self.assertAllClose(resumed.generator(x, training=False), expected, atol=1e-6)
        self.assertLess(_mean_difference(resumed._frozen.generator(x), expected), 0.03)


if __name__ == "__main__":
    tf.test.main()
