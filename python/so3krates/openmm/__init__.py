"""OpenMM glue: the TorchForce wrapper and the openmm-ml potentials `so3krates` and `so3lr`."""


class _ModelDefault:
    """Marks an option the user did not give, where None has a meaning of its own (lrCutoff=None: no cutoff)."""

    def __repr__(self) -> str:
        return "the model's default"


MODEL_DEFAULT = _ModelDefault()
