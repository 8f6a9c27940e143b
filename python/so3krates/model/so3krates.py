"""The SO3krates energy model: atomic numbers and pair vectors -> per-atom energies (eV).

Works on one flat graph (one molecule, a periodic box, or a batch of molecules concatenated),
so the same code serves training, OpenMM and ASE. With SO3LR's options it adds ZBL repulsion and,
on a second (long-range) pair list, electrostatics and dispersion from predicted partial charges
and Hirshfeld ratios (physics.py).
"""
import math
from typing import Optional, Tuple

import torch
from torch import nn

from .config import MAX_ATOMIC_NUMBER, SO3kratesConfig
from .heads import HirshfeldRatios, PartialCharges
from .layers import ChargeEmbedding, EuclideanTransformerBlock, mlp
from .neighbors import NeighborList
from .physics import Dispersion, Electrostatics, ZBLRepulsion
from .radial import CutoffFunction, make_radial_basis
from .spherical import SphericalHarmonics


# buffers of checkpoints written before version 0.2 that are now derived from the configuration
OBSOLETE_BUFFERS = ("degree_ops.repeat", "radial_basis.k_reverse", "radial_basis.log_binomial")


class SO3krates(nn.Module):
    """Embedding -> `num_layers` Euclidean transformer blocks -> per-atom energy (+ physical terms).

    E_i = scale[Z_i] * MLP(x_i) + shift[Z_i] (+ ZBL, electrostatics, dispersion if configured); shift
    holds the per-element reference energies (eV) fitted before training, so that outputs are total
    energies in the data's reference. An element outside `config.elements` maps to a species whose
    features are NaN: such input can never produce plausible-looking numbers (callers check elements
    first and raise a clear error). Optional parts are ModuleLists of zero or one module, which
    TorchScript and torch.export handle without branching on data.
    """

    def __init__(self, config: SO3kratesConfig, dtype: Optional[torch.dtype] = None):
        """`dtype`: build every parameter and constant in this precision (default: torch's default
        dtype). Constants computed in float32 and cast later stay rounded to float32, so build a
        float64 model in float64."""
        super().__init__()
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype or previous)
        try:
            self._build(config)
        finally:
            torch.set_default_dtype(previous)

    def _build(self, config: SO3kratesConfig) -> None:
        self.config = config
        n_elements = len(config.elements)
        n_species = n_elements + 1
        species_of_z = torch.full((MAX_ATOMIC_NUMBER + 1,), n_elements, dtype=torch.long)
        species_of_z[torch.tensor(config.elements)] = torch.arange(n_elements)
        self.register_buffer("species_of_z", species_of_z)
        valid = torch.ones(n_species)
        valid[n_elements] = float("nan")
        self.register_buffer("species_valid", valid)

        self.embedding = nn.Embedding(n_species, config.num_features)
        self.charge_embedding = nn.ModuleList(
            [ChargeEmbedding(n_species, config.num_features, config.activation)] if config.use_charge_embed else [])
        self.spin_embedding = nn.ModuleList(
            [ChargeEmbedding(n_species, config.num_features, config.activation)] if config.use_spin_embed else [])
        n_embeddings = 1 + int(config.use_charge_embed) + int(config.use_spin_embed)
        self.embedding_scale = n_embeddings ** -0.5 if config.average_embeddings else 1.0
        self.radial_basis = make_radial_basis(config.radial_basis, config.num_radial, config.cutoff)
        self.cutoff_function = CutoffFunction(config.cutoff_function, config.cutoff)
        self.spherical_harmonics = SphericalHarmonics(config.degrees)
        self.m_tot = sum(2 * l + 1 for l in config.degrees)
        self.ev_from_neighbours = config.ev_init == "neighbour_mean"
        self.inv_avg_num_neighbors = 1.0 / config.avg_num_neighbors
        self.blocks = nn.ModuleList([
            EuclideanTransformerBlock(
                config.num_features, config.num_heads, config.degrees, config.num_radial,
                act=config.activation, qk_act=config.qk_activation,
                use_spherical_filter=config.use_spherical_filter,
                message_normalization=config.message_normalization,
                avg_num_neighbors=config.avg_num_neighbors,
                layer_norm_1=config.layer_norm_1, layer_norm_2=config.layer_norm_2,
                residual_mlp_1=config.residual_mlp_1, residual_mlp_2=config.residual_mlp_2,
                identity_at_init=config.identity_at_init, layer_norm_eps=config.layer_norm_eps,
                exchange_ev_update=config.exchange_ev_update)
            for _ in range(config.num_layers)])
        self.readout = mlp(config.num_features, config.energy_regression_dim, 1, config.activation,
                           zero_last=config.zero_readout)
        scale = torch.ones(n_species)
        shift = torch.zeros(n_species)
        if config.learn_atomic_type_scales:
            self.energy_scale = nn.Parameter(scale)
        else:
            self.register_buffer("energy_scale", scale)
        if config.learn_atomic_type_shifts:
            self.energy_shift = nn.Parameter(shift)
        else:
            self.register_buffer("energy_shift", shift)
        self.long_range = config.long_range
        self.zbl = nn.ModuleList([ZBLRepulsion()] if config.zbl_repulsion else [])
        self.partial_charges = nn.ModuleList(
            [PartialCharges(n_species, config.num_features, config.activation)] if config.electrostatic_energy else [])
        self.electrostatics = nn.ModuleList(
            [Electrostatics(config.electrostatic_damping)] if config.electrostatic_energy else [])
        self.hirshfeld_ratios = nn.ModuleList(
            [HirshfeldRatios(n_species, config.num_features, config.hirshfeld_dim, config.activation)]
            if config.dispersion_energy else [])
        self.dispersion = nn.ModuleList(
            [Dispersion(config.elements, config.dispersion_damping_scale, config.dispersion_switch_width)]
            if config.dispersion_energy else [])

    @torch.jit.unused
    def set_atomic_energies(self, energies_eV: dict) -> None:
        """Set the per-element reference energies {Z: eV}; unknown elements are an error."""
        unknown = sorted(set(int(z) for z in energies_eV) - set(self.config.elements))
        if unknown:
            raise ValueError(f"atomic energies given for elements {unknown} the model does not have "
                             f"(model elements: {self.config.elements})")
        with torch.no_grad():
            for z, value in energies_eV.items():
                self.energy_shift[self.species_of_z[int(z)]] = float(value)

    @torch.jit.unused
    def load_stored_state(self, state: dict) -> None:
        """load_state_dict for a checkpoint of this or an earlier version: constants that earlier versions
        stored but now derive from the configuration (OBSOLETE_BUFFERS) are ignored."""
        current = self.state_dict()
        self.load_state_dict({k: v for k, v in state.items()
                              if k in current or not k.endswith(OBSOLETE_BUFFERS)})

    @torch.jit.unused
    def atomic_energies_eV(self) -> dict:
        """{Z: reference energy in eV} as stored in the model."""
        return {z: float(self.energy_shift[self.species_of_z[z]].detach()) for z in self.config.elements}

    def representation(self, atomic_numbers: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor,
                       idx_j: torch.Tensor, batch: torch.Tensor, total_charge: torch.Tensor,
                       num_unpaired_electrons: torch.Tensor, fused: bool = False, half_pairs: bool = False
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> species (N,), final invariant features x (N, F), pair distances (P,) Å and cutoff
        values (P,) of the pairs as given. `half_pairs`: the pairs are given once each and used in
        both orders; everything symmetric in i and j (radial basis, cutoff, filters) is computed once
        per pair, half the work of a list with both orders."""
        species = self.species_of_z[atomic_numbers]
        x = self.embedding(species) * self.species_valid[species][:, None]
        for charge_embedding in self.charge_embedding:
            x = x + charge_embedding(species, total_charge.to(x.dtype), batch)
        for spin_embedding in self.spin_embedding:
            x = x + spin_embedding(species, num_unpaired_electrons.to(x.dtype), batch)
        x = x * self.embedding_scale
        distance = torch.linalg.norm(vectors, dim=1)
        rbf = self.radial_basis(distance)
        cut = self.cutoff_function(distance)
        ylm = self.spherical_harmonics(vectors)
        both_i, both_j, both_cut, both_ylm = idx_i, idx_j, cut, ylm
        if half_pairs:  # r_ji = -r_ij: Y_l changes sign with odd l
            both_i, both_j = torch.cat([idx_i, idx_j]), torch.cat([idx_j, idx_i])
            both_cut, both_ylm = torch.cat([cut, cut]), torch.cat([ylm, ylm * self.spherical_harmonics.parity])
        ev = torch.zeros(x.shape[0], self.m_tot, dtype=x.dtype, device=x.device)
        if self.ev_from_neighbours:
            ev = ev.index_add(0, both_i, both_cut[:, None] * both_ylm) * self.inv_avg_num_neighbors
        for block in self.blocks:
            x, ev = block(x, ev, rbf, both_ylm, both_cut, both_i, both_j, fused, half_pairs)
        return species, x, distance, cut

    def forward(self, atomic_numbers: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor,
                idx_j: torch.Tensor, batch: Optional[torch.Tensor] = None,
                total_charge: Optional[torch.Tensor] = None, fused: bool = False,
                num_unpaired_electrons: Optional[torch.Tensor] = None,
                lr_vectors: Optional[torch.Tensor] = None, lr_idx_i: Optional[torch.Tensor] = None,
                lr_idx_j: Optional[torch.Tensor] = None, lr_cutoff: Optional[float] = None,
                half_pairs: bool = False) -> torch.Tensor:
        """Atomic energies (N,) eV: the first output of energies_and_properties (same arguments)."""
        return self.energies_and_properties(atomic_numbers, vectors, idx_i, idx_j, batch, total_charge, fused,
                                            num_unpaired_electrons, lr_vectors, lr_idx_i, lr_idx_j, lr_cutoff,
                                            half_pairs)[0]

    def energies_and_properties(self, atomic_numbers: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor,
                                idx_j: torch.Tensor, batch: Optional[torch.Tensor] = None,
                                total_charge: Optional[torch.Tensor] = None, fused: bool = False,
                                num_unpaired_electrons: Optional[torch.Tensor] = None,
                                lr_vectors: Optional[torch.Tensor] = None, lr_idx_i: Optional[torch.Tensor] = None,
                                lr_idx_j: Optional[torch.Tensor] = None, lr_cutoff: Optional[float] = None,
                                half_pairs: bool = False
                                ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """atomic_numbers (N,) int, vectors r_j - r_i (P, 3) Å of the short-range pairs (both orders, or
        each pair once with half_pairs), idx_i/idx_j (P,), batch (N,) molecule of each atom (None: one
        molecule), total_charge (G,) e and num_unpaired_electrons (G,) (None: 0) -> atomic energies (N,) eV.
        Long-range models also take the long-range pairs, each once (lr_vectors (L, 3) Å, lr_idx_i,
        lr_idx_j) and the cutoff they were built with (None: all pairs, no cutoff).
        `fused` runs the attention's pair operations as compiled CPU ops (less memory, faster), which
        are differentiable once: energies and forces, but not a loss on forces.
        -> (atomic energies (N,) eV, partial charges (N,) e or None, Hirshfeld ratios (N,) or None): the
        last two exist in models with electrostatic / dispersion terms (training targets)."""
        if batch is None:
            batch = torch.zeros_like(atomic_numbers)
        dtype = self.embedding.weight.dtype
        if total_charge is None:
            total_charge = torch.zeros(1, dtype=dtype, device=vectors.device)
        if num_unpaired_electrons is None:  # closed shells: one zero per molecule
            num_unpaired_electrons = torch.zeros_like(total_charge, dtype=dtype)
        species, x, distance, cut = self.representation(atomic_numbers, vectors, idx_i, idx_j, batch, total_charge,
                                                        num_unpaired_electrons, fused, half_pairs)
        energy = self.readout(x).squeeze(-1) * self.energy_scale[species] + self.energy_shift[species]
        for zbl in self.zbl:
            energy = energy + zbl(atomic_numbers.to(x.dtype), vectors, distance, cut, idx_i, idx_j,
                                  1.0 if half_pairs else 0.5, fused)
        # Optional outputs; the loops use the refined tensors q and h (TorchScript types them as Tensor)
        charges: Optional[torch.Tensor] = None
        ratios: Optional[torch.Tensor] = None
        if self.long_range:
            if lr_vectors is None or lr_idx_i is None or lr_idx_j is None:
                raise ValueError("this model has long-range terms: give it the long-range pairs")
            for charge_head in self.partial_charges:
                q = charge_head(x, species, total_charge.to(x.dtype), batch)
                charges = q
                for electrostatics in self.electrostatics:
                    energy = energy + electrostatics(q, lr_vectors, lr_idx_i, lr_idx_j, lr_cutoff, fused)
            for hirshfeld_head in self.hirshfeld_ratios:
                h = hirshfeld_head(x, species)
                ratios = h
                for dispersion in self.dispersion:
                    energy = energy + dispersion(species, h, lr_vectors, lr_idx_i, lr_idx_j, lr_cutoff, fused)
        return energy, charges, ratios


class SO3kratesPotential(nn.Module):
    """What a model file holds: atomic numbers, positions (Å) and an optional periodic cell (Å,
    rows are box vectors), total charge (e) and number of unpaired electrons -> total energy (eV),
    with the neighbour lists inside.

    For inference: on the CPU the neighbour lists, the attention's pair operations and SO3LR's
    physical terms run as compiled ops (`compiled=False`: the PyTorch version everywhere, e.g. to take
    second derivatives). `lr_cutoff` (Å; None: all pairs,
    vacuum only) starts at the model's and can be changed with set_lr_cutoff, also in a loaded file."""

    lr_cutoff: Optional[float]

    def __init__(self, model: SO3krates, compiled: bool = True):
        super().__init__()
        self.model = model
        # each pair once: the model uses both orders and computes what is symmetric once
        self.neighbor_list = NeighborList(model.config.cutoff, compiled=compiled, half=True)
        self.long_range = model.config.long_range
        self.lr_cutoff = model.config.lr_cutoff
        self.lr_switch_width = model.config.dispersion_switch_width
        self.lr_neighbor_list = NeighborList(math.inf if self.lr_cutoff is None else self.lr_cutoff,
                                             compiled=compiled, half=True)
        self.compiled = compiled

    @torch.jit.export
    def set_lr_cutoff(self, cutoff: Optional[float]) -> None:
        """Long-range cutoff in Å (None: every pair, plain Coulomb; vacuum only)."""
        if cutoff is not None and cutoff <= self.lr_switch_width:
            raise ValueError("the long-range cutoff must exceed the dispersion switching width")
        self.lr_cutoff = cutoff
        self.lr_neighbor_list.cutoff = math.inf if cutoff is None else cutoff

    def pair_vectors(self, positions: torch.Tensor, cell: Optional[torch.Tensor]
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3) Å -> idx_i (P,), idx_j (P,), r_j - r_i (P, 3) Å, each pair once (periodic images included)."""
        idx_i, idx_j, shifts = self.neighbor_list(positions, cell)
        return idx_i, idx_j, positions.index_select(0, idx_j) - positions.index_select(0, idx_i) + shifts

    def forward(self, atomic_numbers: torch.Tensor, positions: torch.Tensor, cell: Optional[torch.Tensor] = None,
                total_charge: float = 0.0, num_unpaired_electrons: float = 0.0) -> torch.Tensor:
        """atomic_numbers (N,), positions (N, 3) Å, cell (3, 3) Å or None, total charge (e), unpaired
        electrons (multiplicity - 1) -> energy () eV"""
        return self.energy_and_charges(atomic_numbers, positions, cell, total_charge, num_unpaired_electrons)[0]

    @torch.jit.export
    def energy_and_charges(self, atomic_numbers: torch.Tensor, positions: torch.Tensor,
                           cell: Optional[torch.Tensor] = None, total_charge: float = 0.0,
                           num_unpaired_electrons: float = 0.0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """As forward -> (energy () eV, partial charges (N,) e, or None for a model without an
        electrostatic term). The charges are those of the model's own electrostatics, differentiable
        with respect to the positions (electrostatic embedding uses them)."""
        idx_i, idx_j, vectors = self.pair_vectors(positions, cell)
        charge = torch.full((1,), total_charge, dtype=positions.dtype, device=positions.device)
        unpaired = torch.full((1,), num_unpaired_electrons, dtype=positions.dtype, device=positions.device)
        fused = self.compiled and positions.device.type == "cpu"
        lr_vectors: Optional[torch.Tensor] = None
        lr_i: Optional[torch.Tensor] = None
        lr_j: Optional[torch.Tensor] = None
        if self.long_range:
            lr_i, lr_j, lr_shifts = self.lr_neighbor_list(positions, cell)
            lr_vectors = positions.index_select(0, lr_j) - positions.index_select(0, lr_i) + lr_shifts
        energies, charges, _ = self.model.energies_and_properties(
            atomic_numbers, vectors, idx_i, idx_j, None, charge, fused, unpaired, lr_vectors, lr_i, lr_j,
            self.lr_cutoff, True)
        return energies.sum(), charges
