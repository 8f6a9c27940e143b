"""`so3krates export CHECKPOINT -o model.pt`."""


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a model file from a training checkpoint",
                       description="Turn a checkpoint (latest.pt or best.pt of a run) into a TorchScript model "
                                   "file for OpenMM and ASE, using the EMA weights.")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", default="model.pt")


def run(args) -> int:
    from pathlib import Path

    from so3krates.model import SO3krates, SO3kratesConfig, SO3kratesPotential
    from so3krates.model_file import save_model

    from ..checkpoint import load_checkpoint

    state = load_checkpoint(Path(args.checkpoint))
    dtype = state["ema"]["embedding.weight"].dtype
    model = SO3krates(SO3kratesConfig.from_stored(state["model_config"]), dtype)
    model.load_stored_state(state["ema"])
    data = state["config"]["data"]
    info = save_model(SO3kratesPotential(model), args.output,
                      training_data={"path": data["path"], "epoch": state["epoch"], "metrics": state["metrics"]})
    print(f"wrote {args.output} ({info.dtype}) from {args.checkpoint} (epoch {state['epoch']})")
    return 0
