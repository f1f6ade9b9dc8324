"""Training: losses, learning-rate schedules, the image pool, the ``keras.Model`` trainers
(``trainers/``), the loop that drives them (``loop``), callbacks, checkpoints, clean stops on
signals, the one-run-per-folder lock and ``tf.distribute`` strategies.
"""
