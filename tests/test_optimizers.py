"""optim.optimizer=muon: Muon gets the hidden weight matrices only, trains, and its state survives a
checkpoint; resuming with another optimiser is an error that names both."""
import io

import pytest
import torch

from so3krates.model import SO3krates, SO3kratesConfig
from so3krates.so3lr import CONFIG as SO3LR_CONFIG
from so3krates_train.config import load_config
from so3krates_train.optimizers import MuonWithAdamW, make_optimizer
from so3krates_train.trainer import Trainer

from test_training import SMALL


def small_model() -> SO3krates:
    torch.manual_seed(0)
    return SO3krates(SO3kratesConfig(elements=[1, 6, 8], num_features=16, num_radial=8, num_layers=1,
                                     zero_readout=False))


def test_muon_gets_the_hidden_matrices_and_adamw_the_rest():
    model = small_model()
    optimizer = make_optimizer(model, "muon", 1e-3, 0.0, False)
    assert isinstance(optimizer, MuonWithAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for group in optimizer.muon.param_groups for p in group["params"]}
    adamw = {names[id(p)] for group in optimizer.adamw.param_groups for p in group["params"]}
    assert muon.isdisjoint(adamw) and muon | adamw == set(names.values())
    assert "blocks.0.exchange.linear.weight" in muon and "readout.0.weight" in muon
    # the embedding table, the one-output head, biases and the 3-D per-head query/key/value stay with AdamW
    assert {"embedding.weight", "readout.2.weight", "readout.0.bias", "blocks.0.attention.query_1.weight"} <= adamw
    assert all(dict(model.named_parameters())[n].ndim == 2 for n in muon)


def test_muon_leaves_so3lr_s_element_tables_to_adamw():
    """SO3LR's architecture: every nn.Embedding (elements, charge and spin embeddings, the per-element
    partial-charge bias and Hirshfeld shift) stays with AdamW; the hidden layers of its charge
    embedding and charge head go to Muon."""
    model = SO3krates(SO3kratesConfig.from_dict({**SO3LR_CONFIG, "elements": [1, 6, 8]}))
    optimizer = make_optimizer(model, "muon", 1e-3, 0.0, False)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for group in optimizer.muon.param_groups for p in group["params"]}
    tables = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.Embedding)}
    assert {"partial_charges.0.bias.weight", "hirshfeld_ratios.0.shift.weight", "embedding.weight"} <= tables
    assert tables.isdisjoint(muon)
    assert {"charge_embedding.0.residual.mlp.0.weight", "partial_charges.0.regression.0.weight"} <= muon
    assert "partial_charges.0.regression.2.weight" not in muon  # one output per atom: a head


def test_optimizer_state_survives_a_round_trip():
    """Two optimisers, one restored from the other's state_dict, take the same next step at a newly set
    rate (the gradient of the weights' squared norm stands in for a loss: any deterministic gradient
    will do)."""
    a, b = small_model(), small_model()
    optimizer_a = make_optimizer(a, "muon", 1e-2, 0.0, False)

    def step(model, optimizer):
        optimizer.zero_grad()
        loss = sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step(a, optimizer_a)
    b.load_state_dict(a.state_dict())
    optimizer_b = make_optimizer(b, "muon", 1e-2, 0.0, False)
    saved = io.BytesIO()  # through a file, as a checkpoint: a state_dict shares its tensors with the optimiser
    torch.save(optimizer_a.state_dict(), saved)
    saved.seek(0)
    optimizer_b.load_state_dict(torch.load(saved))
    for group in optimizer_a.param_groups + optimizer_b.param_groups:  # as the schedule sets the rate
        group["lr"] = 3e-3
    step(a, optimizer_a)
    step(b, optimizer_b)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"{name} differs after the restored step")


def test_muon_training_lowers_validation_force_error(tmp_path):
    """The same run as test_training's AdamW one, held to the same factor."""
    config = load_config(None, SMALL + ["optim.optimizer=muon", "optim.epochs=8", "model.num_features=32",
                                        "model.num_layers=2", "data.train=200", f"output={tmp_path}"])
    trainer = Trainer(config, show_progress=False)
    before = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    trainer.train()
    after = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    print(f"\nMuon: validation force MAE {1000 * before:.0f} -> {1000 * after:.0f} meV/Å")
    assert after < before / 3


def test_resuming_with_another_optimizer_is_an_error(tmp_path):
    Trainer(load_config(None, SMALL + ["optim.epochs=1", f"output={tmp_path}"]), show_progress=False).train()
    with pytest.raises(ValueError, match=r"latest.pt: this run was trained with optim.optimizer=adamw; resume it "
                                         r"with that optimiser, not muon"):
        Trainer(load_config(None, SMALL + ["optim.optimizer=muon", "optim.epochs=2", f"output={tmp_path}"]),
                resume=True, show_progress=False)


def test_an_unknown_optimizer_is_an_error():
    with pytest.raises(ValueError, match=r"optim.optimizer='sgd' must be one of \['adamw', 'muon'\]"):
        make_optimizer(small_model(), "sgd", 1e-3, 0.0, False)


def test_muon_ns_steps_reaches_torch_s_muon(tmp_path):
    trainer = Trainer(load_config(None, SMALL + ["optim.optimizer=muon", "optim.muon_ns_steps=3", f"output={tmp_path}"]),
                      show_progress=False)
    assert [group["ns_steps"] for group in trainer.optimizer.muon.param_groups] == [3]
    with pytest.raises(ValueError, match=r"optim.muon_ns_steps=0 must be from 1 to 99"):
        make_optimizer(small_model(), "muon", 1e-3, 0.0, False, muon_ns_steps=0)


def test_weight_decay_is_the_same_fraction_for_muon_s_and_adamw_s_weights():
    """With zero gradients a step only decays: every weight, Muon's included (whose rate is lr_scale·lr),
    shrinks by the factor 1 - lr·weight_decay."""
    model = small_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer(model, "muon", 1e-2, 0.5, False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), (1 - 1e-2 * 0.5) * before[name], msg=f"{name} decayed otherwise")
