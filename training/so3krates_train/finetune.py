"""Starting a run from a model file (fine-tuning; `init_from`): its architecture and weights, the
per-element energies refitted to the new data, and parts kept fixed on request.

SO3LR was trained without an energy reference (forces, dipoles, Hirshfeld ratios), and any model's
reference energies belong to its own level of theory: before the first step, the per-element
energies are fitted to the residual E_data - E_model on the training frames, so that the network
starts from the model's forces and the data's energy zero."""
import dataclasses
from typing import Dict

import numpy as np
import torch

from so3krates.elements import symbol
from so3krates.model import SO3krates
from so3krates.model_file import ModelFileError, load_model

from .batching import collate, molecule_energies
from .data import DataError, Frames
from .fitting import fit_atomic_energies


def load_initial_model(init_from: str, data_elements, dtype: torch.dtype) -> SO3krates:
    """The network of model file `init_from` ("so3lr": the shipped SO3LR) as a trainable module.
    Data elements the model lacks are an error naming them."""
    try:
        potential, info = load_model(init_from)
    except ModelFileError as err:
        raise ModelFileError(f"init_from={init_from}: {err} (give 'so3lr' or the path of a model file)") from None
    missing = sorted(set(data_elements) - set(info.config.elements))
    if missing:
        raise DataError(f"init_from={init_from}: the model covers elements "
                        f"{[symbol(z) for z in info.config.elements]}, the data also hold "
                        f"{[symbol(z) for z in missing]}; a model cannot be fine-tuned to elements it has no "
                        f"embedding for: train from scratch (no init_from) or drop those molecules")
    network = getattr(potential, "potential", potential).model  # files of format 2/3 sit inside LegacyCall
    model = SO3krates(info.config, dtype)
    # a TorchScript module also lists its non-persistent buffers (constants the configuration rebuilds)
    wanted = model.state_dict()
    model.load_state_dict({name: value.to(dtype) if value.is_floating_point() else value
                           for name, value in network.state_dict().items() if name in wanted})
    return model


@torch.no_grad()
def model_energies(model: SO3krates, frames: Frames, batch_size: int = 32) -> np.ndarray:
    """Total energies (n,) eV of `frames` under `model` (no forces)."""
    config = model.config
    device, dtype = model.embedding.weight.device, model.embedding.weight.dtype
    energies = []
    for start in range(0, len(frames), batch_size):
        batch = collate(frames, range(start, min(start + batch_size, len(frames))), config.cutoff, dtype, device,
                        config.long_range, config.lr_cutoff)
        total = molecule_energies(model, batch, batch["positions"], config.lr_cutoff)[0]
        energies.append(total.double().cpu().numpy())
    return np.concatenate(energies)


def refit_atomic_energies(model: SO3krates, frames: Frames, intercept: bool = False) -> Dict[int, float]:
    """Shift the model's per-element energies by the least-squares fit of E_data - E_model on `frames`;
    returns the new per-element energies {Z: eV}."""
    residual = dataclasses.replace(frames, energy=frames.energy - model_energies(model, frames))
    offsets = fit_atomic_energies(residual, residual.elements, intercept)  # only the data's elements move
    energies = {z: e + offsets.get(z, 0.0) for z, e in model.atomic_energies_eV().items()}
    model.set_atomic_energies(energies)
    return energies


def freeze(model: SO3krates, embeddings: bool, layers: int) -> None:
    """Keep the embeddings and/or the first `layers` transformer blocks fixed (no gradients)."""
    if layers < 0 or layers > len(model.blocks):
        raise ValueError(f"freeze_layers={layers}: the model has {len(model.blocks)} layers")
    parts = list(model.blocks[:layers])
    if embeddings:
        parts += [model.embedding, *model.charge_embedding, *model.spin_embedding]
    for part in parts:
        for parameter in part.parameters():
            parameter.requires_grad_(False)
