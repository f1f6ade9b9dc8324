"""tf.distribute strategies from a flag, and kgan's own driver for ``train_step``.

Keras 3 ``fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
``CustomLoop`` drives the very same ``trainer.train_step`` with ``strategy.run`` over
``experimental_distribute_dataset`` batches, and calls the same Keras callbacks (progress bar,
TensorBoard, checkpoints) that ``fit`` would. One train_step, two drivers. Under
MultiWorkerMirroredStrategy it asks TensorFlow's ``PreemptionCheckpointHandler`` after every
step whether a worker was preempted (kgan.training.preemption builds the handler).
"""

import json
import os

import keras
import tensorflow as tf

from kgan.training.preemption import TrainingInterrupted

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def get_strategy(name="default", devices=None, tpu=None):
    """Creates the strategy named by ``--distribution``.

    Args:
        name: ``default`` (one device), ``mirrored`` (the GPUs, or ``devices``, of one
            machine), ``multi_worker`` (reads TF_CONFIG) or ``tpu``.
        devices: device names for ``mirrored`` (e.g. ``/gpu:0,/gpu:1``).
        tpu: TPU name or grpc address for ``tpu``.

    Returns:
        A ``tf.distribute.Strategy``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribution=multi_worker needs the TF_CONFIG environment "
                             "variable (cluster and task); see docs/scaling.md.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown distribution {name!r}; use one of {', '.join(STRATEGIES)}.")


def is_chief(strategy=None):
    """True on the worker that writes checkpoints and logs (always, outside multi-worker)."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0
                                                         and not _has_chief())


def _has_chief():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" in cluster


def worker_dir(path, strategy=None):
    """``path`` on the chief; a per-worker scratch folder elsewhere (every worker must take part
    in a multi-worker checkpoint save, but only the chief's copy is kept)."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    return os.path.join(path, ".workers", f"{resolver.task_type}_{resolver.task_id}")


def synchronized_cond(pred, true_fn, false_fn, args=()):
    """``tf.cond(pred, true_fn, false_fn)`` whose branches may synchronise replicas.

    Under Mirrored/MultiWorkerMirroredStrategy a ``tf.cond`` in the replica function cannot
    hold a synchronisation point such as ``optimizer.apply_gradients`` or ``all_reduce``
    ("merge_call called while defining a new graph"). As Keras' ``LossScaleOptimizer`` does,
    the cond then runs in the cross-replica context and the chosen branch on every replica.

    Args:
        pred: a boolean scalar, equal on every replica (the first replica's value is used).
        true_fn, false_fn: functions of ``*args`` run in the replica context; their return
            values are ignored.
        args: per-replica arguments for the branches (e.g. this replica's batch).
    """
    context = tf.distribute.get_replica_context()
    if context is None or tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(pred, lambda: _no_outputs(true_fn, args), lambda: _no_outputs(false_fn, args))
        return

    def cross_replica(strategy, pred, *args):
        pred = strategy.experimental_local_results(pred)[0]
        each = lambda fn: strategy.extended.call_for_each_replica(_no_outputs, args=(fn, args))
        tf.cond(pred, lambda: each(true_fn), lambda: each(false_fn))

    context.merge_call(cross_replica, args=(pred, *args))


def _no_outputs(fn, args):
    fn(*args)


def assign_on_every_replica(assignments):
    """Assigns ``(variable, value)`` pairs whose values are equal on every replica, to
    variables that have no aggregation of their own (e.g. Keras' loss-scale state).

    Args:
        assignments: list of (variable, value) pairs.
    """
    context = tf.distribute.get_replica_context()
    if context is None or tf.__internal__.distribute.strategy_supports_no_merge_call():
        for variable, value in assignments:
            variable.assign(value)
        return

    def cross_replica(strategy, values):
        for (variable, _), value in zip(assignments, values):
            variable.assign(strategy.experimental_local_results(value)[0])

    context.merge_call(cross_replica, args=([value for _, value in assignments],))


class CustomLoop:
    """Drives ``trainer.train_step`` with ``strategy.run``, calling Keras callbacks as ``fit``.

    Args:
        trainer: a compiled kgan trainer (``keras.Model`` with ``train_step``).
        strategy: the strategy the trainer was built under.
        jit_compile: compile the per-replica step with XLA.
        preemption_handler: a ``tf.distribute.experimental.PreemptionCheckpointHandler``
            asked after every step (it saves and ends the run when a worker is preempted).
    """

    def __init__(self, trainer, strategy, jit_compile=False, preemption_handler=None):
        self.trainer = trainer
        self.strategy = strategy
        self.preemption_handler = preemption_handler
        step = tf.function(trainer.train_step, jit_compile=jit_compile, reduce_retracing=True)

        @tf.function
        def distributed_step(batch):
            outputs = strategy.run(step, args=(batch,))
            # Losses are per-replica means: average them, as fit does.
            return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                    for name, value in outputs.items()}

        self.distributed_step = distributed_step

    def run(self, dataset, initial_step, end_step, steps_per_epoch, callbacks=(), verbose=1):
        """Trains from ``initial_step`` up to ``end_step`` (exclusive).

        Args:
            dataset: a batched, repeating ``tf.data.Dataset`` of the global batch.
            initial_step: the step to start at (the restored optimizer iteration count).
            end_step: the step to stop at.
            steps_per_epoch: steps in one epoch (for epoch callbacks and the progress bar).
            callbacks: Keras callbacks.
            verbose: progress bar verbosity, as fit.

        Returns:
            The logs of the last step (python floats).
        """
        trainer = self.trainer
        epochs = -(-end_step // steps_per_epoch)
        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, add_progbar=verbose != 0, model=trainer,
            verbose=verbose, epochs=epochs, steps=steps_per_epoch)
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        trainer.stop_training = False
        logs = {}
        callback_list.on_train_begin()
        step = initial_step
        try:
            while step < end_step and not trainer.stop_training:
                epoch = step // steps_per_epoch
                callback_list.on_epoch_begin(epoch)
                epoch_end = min((epoch + 1) * steps_per_epoch, end_step)
                while step < epoch_end and not trainer.stop_training:
                    batch_index = step - epoch * steps_per_epoch
                    callback_list.on_train_batch_begin(batch_index)
                    logs = self.distributed_step(next(iterator))
                    logs = {name: float(value) for name, value in logs.items()}
                    callback_list.on_train_batch_end(batch_index, logs)
                    step += 1
                    if self.preemption_handler is not None:
                        # Saves at an agreed step and raises TrainingInterrupted when preempted.
                        self.preemption_handler.save_checkpoint_if_preempted(
                            checkpoint_number=step)
                callback_list.on_epoch_end(epoch, logs)
        except TrainingInterrupted:
            callback_list.on_train_end(logs)  # flushes TensorBoard (the checkpoint is saved)
            raise
        callback_list.on_train_end(logs)
        return logs
