"""Trainers under mixed precision (float16 with loss scaling, bfloat16) and XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan.models import build_discriminator, build_generator, unet_generator
from kgan.training import distribute, losses
from kgan.training.trainers.base import adam
from kgan.training.trainers.cyclegan import CycleGAN, build_cyclegan
from kgan.training.trainers.pretrain import GeneratorPretrainer

SIZE = 32


def images(count=2, seed=0):
    rng = np.random.RandomState(seed)
    return tuple(rng.uniform(-1, 1, (count, SIZE, SIZE, 3)).astype("float32")
                 for _ in range(2))


def repeat(batch):
    return tf.data.Dataset.from_tensors(batch).repeat()


def train(trainer, steps, batch, jit_compile=False):
    loop = distribute.CustomLoop(trainer, tf.distribute.get_strategy(), jit_compile)
    return loop.run(repeat(batch), 0, steps, steps, verbose=0)


class MixedPrecisionTest(tf.test.TestCase):

    def tearDown(self):
        keras.mixed_precision.set_global_policy("float32")
        super().tearDown()

    @pytest.mark.slow
    def test_half_precision_trains_with_float32_variables(self):
        for policy, compute in (("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")):
            keras.mixed_precision.set_global_policy(policy)
            trainer = build_cyclegan(generator="resnet_6blocks", discriminator="n_layers",
                                     n_layers_d=2, ngf=4, ndf=4, pool_size=2, crop_size=SIZE,
                                     steps_per_epoch=10)
            self.assertEqual(isinstance(trainer.g_optimizer,
                                        keras.optimizers.LossScaleOptimizer),
                             policy == "mixed_float16")
            computes = {layer.compute_dtype for layer in trainer.generator_ab.layers
                        if isinstance(layer, keras.layers.Conv2D)}
            self.assertEqual(computes, {compute}, policy)
            logs = train(trainer, 3, images())
            for name, value in logs.items():
                self.assertTrue(np.isfinite(value), f"{policy} {name}={value}")
            self.assertEqual({v.dtype for v in trainer.weights}, {"float32"}, policy)
            # Losses see float32 images and logits.
            self.assertEqual(trainer.generator_ab(images()[0]).dtype, tf.float32)
            self.assertEqual(trainer.discriminator_a(images()[0]).dtype, tf.float32)
            # Every step either updated the networks or (float16) halved the loss scale: the
            # first steps at Keras' initial scale 2**15 may overflow and be skipped.
            for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
                updates = int(optimizer.iterations.numpy())
                self.assertGreaterEqual(updates, 1, policy)
                if policy == "mixed_float16":
                    skipped = np.log2(optimizer.initial_scale / optimizer.dynamic_scale.numpy())
                    self.assertEqual(updates + skipped, 3, policy)
                else:
                    self.assertEqual(updates, 3, policy)

    def test_float16_overflow_skips_the_step_and_halves_the_scale(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        trainer = GeneratorPretrainer(
            unet_generator(num_downs=5, ngf=4, norm="instance", use_dropout=False),
            losses.PixelContentLoss(ssim_weight=0.0))
        trainer.compile(adam(1e-3))
        optimizer = trainer.g_optimizer
        optimizer.dynamic_scale.assign(1e38)  # the scaled gradients overflow float16
        before = [v.numpy() for v in trainer.generator.weights]
        logs = train(trainer, 1, images())
        self.assertTrue(np.isfinite(logs["content"]))
        for old, new in zip(before, trainer.generator.weights):
            self.assertAllEqual(old, new.numpy())
        self.assertAllClose(optimizer.dynamic_scale.numpy(), 5e37, rtol=1e-6)
        self.assertEqual(int(optimizer.iterations.numpy()), 0)

        optimizer.dynamic_scale.assign(1024.0)
        train(trainer, 1, images())
        self.assertEqual(int(optimizer.iterations.numpy()), 1)
        moved = [not np.array_equal(old, new.numpy())
                 for old, new in zip(before, trainer.generator.weights)]
        self.assertTrue(any(moved))
        self.assertTrue(all(np.isfinite(v.numpy()).all() for v in trainer.generator.weights))


class XLATest(tf.test.TestCase):

    def build(self, jit_compile, initial=None):
        generator = lambda: build_generator("resnet_6blocks", ngf=4)
        discriminator = lambda: build_discriminator("n_layers", 3, 4, 2)
        trainer = CycleGAN(generator(), generator(), discriminator(), discriminator(),
                           pool_size=0)
        # SGD: the update is proportional to the gradient (Adam's first step is ~sign).
        trainer.compile(g_optimizer=keras.optimizers.SGD(0.5),
                        d_optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile)
        if initial is not None:
            for variable, value in zip(trainer.weights, initial):
                variable.assign(value)
        return trainer

    @pytest.mark.slow
    def test_jit_compile_on_and_off_give_the_same_step(self):
        batch = images()
        plain = self.build(False)
        initial = [v.numpy() for v in plain.weights]
        train(plain, 1, batch)
        reference = [v.numpy() - w for v, w in zip(plain.weights, initial)]
        scale = max(np.abs(d).max() for d in reference)
        self.assertGreater(scale, 1e-3)
        for driver in ("loop", "fit"):
            compiled = self.build(True, initial)
            if driver == "loop":
                train(compiled, 1, batch, jit_compile=True)
            else:
                compiled.fit(repeat(batch), epochs=1, steps_per_epoch=1, verbose=0)
            error = max(np.abs(v.numpy() - w - d).max()
                        for v, w, d in zip(compiled.weights, initial, reference))
            self.assertLess(error / scale, 1e-4, driver)
