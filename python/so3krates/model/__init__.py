"""SO3krates network, its building blocks and the in-model neighbour list."""
from .config import SO3kratesConfig
from .neighbors import NeighborList
from .so3krates import SO3krates, SO3kratesPotential

__all__ = ["SO3kratesConfig", "SO3krates", "SO3kratesPotential", "NeighborList"]
