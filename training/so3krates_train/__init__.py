"""Training of SO3krates models: data readers, per-element energies, training, evaluation.

Installed with the `train` extra; its commands appear under the `so3krates` CLI.
"""
