"""Tests for kgan.training.image_pool: the reference's pool rule, compiled use, and per-replica pools."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from kgan.training.image_pool import ImagePool

SHAPE = (2, 2, 1)


def _images(values):
    """A batch where image i is filled with values[i], so outputs can be traced to inputs."""
    values = np.asarray(values, "float32")
    return np.tile(values[:, None, None, None], (1, *SHAPE))


def _ids(images):
    """The fill value of each image of a batch (checks that the image is uniform)."""
    images = np.asarray(images)
    ids = images.reshape(len(images), -1)
    np.testing.assert_array_equal(ids, ids[:, :1] * np.ones_like(ids))
    return ids[:, 0]


def _reference_query(buffer, count, pool_size, ids, draws):
    """The PyTorch reference's ImagePool.query on image ids, with the pool's random draws."""
    buffer, out = list(buffer), []
    for image, (p, u) in zip(ids, draws):
        if count < pool_size:
            buffer[count] = image
            count += 1
            out.append(image)
        elif p > 0.5:
            index = min(int(u * pool_size), pool_size - 1)
            out.append(buffer[index])
            buffer[index] = image
        else:
            out.append(image)
    return buffer, count, out


class ImagePoolTest(tf.test.TestCase):

    def test_size_zero_is_pass_through(self):
        pool = ImagePool(0)
        images = _images([1.0, 2.0, 3.0])
        self.assertAllEqual(pool.query(images, tf.constant([1, 2])), images)
        self.assertEmpty(pool.variables)

    def test_filling_returns_inputs_and_stores_them(self):
        pool = ImagePool(4, SHAPE)
        out = pool.query(_images([1, 2]), tf.constant([0, 0]))
        self.assertAllEqual(_ids(out), [1, 2])
        self.assertEqual(int(pool.count), 2)
        out = pool.query(_images([3, 4]), tf.constant([0, 1]))
        self.assertAllEqual(_ids(out), [3, 4])
        self.assertEqual(int(pool.count), 4)
        self.assertAllEqual(_ids(pool.images), [1, 2, 3, 4])
        # The count saturates at pool_size.
        pool.query(_images([5, 6]), tf.constant([0, 2]))
        self.assertEqual(int(pool.count), 4)

    def test_full_pool_follows_reference_rule(self):
        # Batch 5 on a pool of 2 also makes images of one batch read and overwrite slots
        # that earlier images of the same batch just wrote.
        same_batch_returns = 0
        for pool_size, batch in ((3, 2), (2, 5)):
            pool = ImagePool(pool_size, SHAPE)
            buffer, count, next_id, swaps = [0.0] * pool_size, 0, 1.0, 0
            for step in range(12):
                seed = tf.constant([step, 7])
                ids = [next_id + i for i in range(batch)]
                next_id += batch
                draws = tf.random.stateless_uniform([batch, 2], seed=seed).numpy()
                expected = []
                for image, draw in zip(ids, draws):
                    before = list(buffer[:count])
                    buffer, count, (returned,) = _reference_query(buffer, count, pool_size,
                                                                  [image], [draw])
                    expected.append(returned)
                    # Either the new image comes back, or a stored one and the new one
                    # takes its place.
                    if returned != image:
                        self.assertIn(returned, before)
                        self.assertIn(image, buffer)
                        swaps += 1
                        same_batch_returns += int(returned in ids)
                out = _ids(pool.query(_images(ids), seed))
                self.assertAllEqual(out, expected)
                self.assertAllEqual(_ids(pool.images), buffer)
                self.assertEqual(int(pool.count), count)
            self.assertGreater(swaps, 0)
        self.assertGreater(same_batch_returns, 0)

    def test_about_half_of_queries_return_stored_images(self):
        pool = ImagePool(4, SHAPE)
        pool.query(_images([-1, -2, -3, -4]), tf.constant([0, 0]))
        query = tf.function(pool.query)
        swapped = 0
        for step in range(200):
            out = _ids(query(_images([step]), tf.constant([step, 3])))
            swapped += int(out[0] != step)
        self.assertBetween(swapped / 200, 0.35, 0.65)

    def test_tf_function_and_xla_follow_reference_rule(self):
        # XLA draws other stateless random numbers than the TF kernels for the same seed, so
        # each mode is checked against the reference rule run on its own draws.
        for mode, pool_size, batch in (("function", 3, 2), ("xla", 3, 2), ("xla", 2, 5)):
            jit = mode == "xla"
            pool = ImagePool(pool_size, SHAPE)
            query = tf.function(pool.query, jit_compile=jit)
            draw = tf.function(lambda seed: tf.random.stateless_uniform([batch, 2], seed=seed),
                               jit_compile=jit)
            buffer, count, swaps = [0.0] * pool_size, 0, 0
            for step in range(8):
                seed = tf.constant([step, 5])
                ids = [batch * step + i + 1 for i in range(batch)]
                buffer, count, expected = _reference_query(buffer, count, pool_size, ids,
                                                           draw(seed).numpy())
                out = _ids(query(_images(ids), seed))
                self.assertAllEqual(out, expected, msg=mode)
                swaps += int(np.sum(out != ids))
            self.assertAllEqual(_ids(pool.images), buffer, msg=mode)
            self.assertEqual(int(pool.count), count, msg=mode)
            self.assertGreater(swaps, 0, msg=mode)

    def test_tf_function_matches_eager(self):
        results = []
        for compiled in (False, True):
            pool = ImagePool(3, SHAPE)
            query = tf.function(pool.query) if compiled else pool.query
            outs = [_ids(query(_images([2 * s + 1, 2 * s + 2]), tf.constant([s, 5])))
                    for s in range(6)]
            results.append((np.stack(outs), _ids(pool.images)))
        self.assertAllEqual(results[0][0], results[1][0])
        self.assertAllEqual(results[0][1], results[1][1])

    def test_same_seed_same_output(self):
        pools = [ImagePool(2, SHAPE), ImagePool(2, SHAPE)]
        for step in range(5):
            images = _images([3 * step + 1, 3 * step + 2, 3 * step + 3])
            out = [p.query(images, tf.constant([step, 11])) for p in pools]
            self.assertAllEqual(out[0], out[1])

    def test_checkpoint_round_trip(self):
        pool = ImagePool(2, SHAPE)
        pool.query(_images([5, 6]), tf.constant([0, 0]))
        path = tf.train.Checkpoint(pool=pool).write(os.path.join(self.get_temp_dir(), "ckpt"))
        restored = ImagePool(2, SHAPE)
        tf.train.Checkpoint(pool=restored).read(path).assert_consumed()
        self.assertAllEqual(_ids(restored.images), [5, 6])
        self.assertEqual(int(restored.count), 2)

    def test_needs_fixed_image_shape(self):
        for shape in (None, (None, None, 3)):
            with self.assertRaisesRegex(ValueError, "fixed image size.*pool_size=0"):
                ImagePool(50, shape)

    def test_needs_static_batch(self):
        pool = ImagePool(2, SHAPE)
        query = tf.function(pool.query, input_signature=[
            tf.TensorSpec([None, *SHAPE]), tf.TensorSpec([2], tf.int32)])
        with self.assertRaisesRegex(ValueError, "static batch size"):
            query.get_concrete_function()

    def test_mirrored_strategy_keeps_a_pool_per_replica(self):
        # Two logical CPUs must be configured before TensorFlow initialises, which other test
        # modules in this pytest process have already done: run it in a fresh interpreter.
        script = textwrap.dedent("""
            import numpy as np
            import tensorflow as tf
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
            from kgan.training.image_pool import ImagePool

            strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            with strategy.scope():
                pool = ImagePool(2, (2, 2, 1))

            def step(k, seed):
                # Replica r sees ids 1000 * (r + 1) + 10 * k + {0, 1}.
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                base = 1000.0 * tf.cast(replica + 1, tf.float32) + 10.0 * k
                images = base + tf.reshape(tf.range(2, dtype=tf.float32), [2, 1, 1, 1])
                return pool.query(tf.tile(images, [1, 2, 2, 1]), seed)

            run = tf.function(lambda k, seed: strategy.run(step, args=(k, seed)))
            for k in range(8):
                for r, out in enumerate(strategy.experimental_local_results(
                        run(tf.constant(float(k)), tf.constant([k, 9])))):
                    out = out.numpy()[:, 0, 0, 0]
                    assert np.all(out // 1000 == r + 1), (r, out)
            for r, images in enumerate(strategy.experimental_local_results(pool.images)):
                assert np.all(images.numpy() // 1000 == r + 1), (r, images.numpy().ravel())
            counts = [int(c) for c in strategy.experimental_local_results(pool.count)]
            assert counts == [2, 2], counts
            print("per-replica pools ok")
        """)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                env=env, timeout=300)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr[-3000:])
        self.assertIn("per-replica pools ok", result.stdout)


if __name__ == "__main__":
    tf.test.main()
