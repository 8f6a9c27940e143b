"""The optimiser named by `optim.optimizer`: AdamW on every weight, or Muon on the hidden weight
matrices with AdamW on the rest.

Muon (Jordan et al. 2024; `torch.optim.Muon`) replaces a matrix's momentum by its nearest orthogonal
matrix, so that every direction of the matrix moves at the same rate; it is meant for hidden 2-D
weights only, so embedding tables, the one-output heads, biases, norms and the per-head (3-D)
query/key/value tensors stay with AdamW. One `optim.lr` serves both: torch scales Muon's rate so that its updates have
the root-mean-square size 0.2·lr ("match_rms_adamw", the size of AdamW's updates late in long language
model runs), and the group's `lr_scale` of 5 brings that to lr, the size of AdamW's updates while the
gradients are consistent, as in these short runs (at 0.2·lr, 6 epochs of a small ethanol model lowered
its validation force error a third as much as AdamW's; benchmarks/ACCURACY.md, "A twelfth sitting")."""
from typing import Dict, List, Set

import torch

from .config import OptimConfig

OPTIMIZERS = ("adamw", "muon")
MUON_LR_SCALE = 5.0  # × optim.lr: updates of root-mean-square size lr (torch's "match_rms_adamw" gives 0.2·lr)


def hidden_matrices(model: torch.nn.Module) -> Set[int]:
    """Muon's share, as ids: the weights of linear layers with more than one output. By module type, not
    name: SO3LR's per-element tables (partial-charge bias, Hirshfeld shift) are `nn.Embedding`s whose
    names do not say so, and its charge embedding holds hidden linear layers."""
    return {id(module.weight) for module in model.modules()
            if isinstance(module, torch.nn.Linear) and module.out_features > 1}


class MuonWithAdamW:
    """Muon on the hidden matrices, AdamW on everything else, stepped together; `param_groups` lists
    both, so a learning-rate schedule that sets every group's "lr" (times its "lr_scale") drives both."""

    def __init__(self, model: torch.nn.Module, lr: float, weight_decay: float, amsgrad: bool, ns_steps: int):
        hidden = hidden_matrices(model)
        weights = [p for p in model.parameters() if p.requires_grad]
        matrices = [p for p in weights if id(p) in hidden]
        others = [p for p in weights if id(p) not in hidden]
        if not matrices:
            raise ValueError("optim.optimizer=muon: the model has no hidden weight matrix to give Muon; use adamw")
        # torch's Muon decays by its own (scaled) rate times weight_decay: divided here, so that every weight
        # loses the fraction lr·weight_decay per step, as with AdamW
        self.muon = torch.optim.Muon([{"params": matrices, "lr_scale": MUON_LR_SCALE}], lr=lr * MUON_LR_SCALE,
                                     weight_decay=weight_decay / MUON_LR_SCALE, ns_steps=ns_steps,
                                     adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(others, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad, foreach=True)

    @property
    def param_groups(self) -> List[Dict]:
        # read anew each time: load_state_dict replaces the optimisers' group dicts
        return self.adamw.param_groups + self.muon.param_groups  # [0]: AdamW's, at optim.lr itself

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def state_dict(self) -> Dict[str, Dict]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: Dict[str, Dict]) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float, amsgrad: bool,
                   muon_ns_steps: int = OptimConfig.muon_ns_steps):
    """The optimiser `name` (one of OPTIMIZERS) over the model's trainable weights; `muon_ns_steps`
    Newton-Schulz iterations per Muon update (each costs three matrix products per matrix)."""
    if name == "adamw":
        # foreach: one kernel per operation over all parameters (a small model's step is overhead-bound)
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                 weight_decay=weight_decay, amsgrad=amsgrad, foreach=True)
    if name == "muon":
        if not 1 <= muon_ns_steps < 100:  # torch refuses 100 or more; 0 would leave the update unorthogonalised
            raise ValueError(f"optim.muon_ns_steps={muon_ns_steps} must be from 1 to 99")
        return MuonWithAdamW(model, lr, weight_decay, amsgrad, muon_ns_steps)
    raise ValueError(f"optim.optimizer={name!r} must be one of {list(OPTIMIZERS)}")


def load_optimizer_state(optimizer, state: Dict, checkpoint: str, name: str) -> None:
    """Restore a checkpoint's optimiser state, or say that it was written by another optimiser."""
    stored = "muon" if set(state) == {"muon", "adamw"} else "adamw"
    if stored != name:
        raise ValueError(f"{checkpoint}: this run was trained with optim.optimizer={stored}; resume it with "
                         f"that optimiser, not {name}")
    optimizer.load_state_dict(state)
