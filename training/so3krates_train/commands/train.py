"""`so3krates train CONFIG.yaml [key=value ...]`."""


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on reference data",
                       description="Fit per-element energies (or, with init_from=so3lr or a model file, start "
                                   "from that model and refit them), train SO3krates on energies and forces (and "
                                   "dipoles and partial charges for long-range models), write "
                                   "checkpoints (latest.pt, best.pt), metrics.csv and the final model.pt into "
                                   "the run's output directory. Overrides like optim.lr=3e-4 data.train=500 "
                                   "change the YAML config. Interrupted runs continue with --resume. "
                                   "Under torchrun, each process trains on its share of every batch (DDP).")
    p.add_argument("config", nargs="?", help="YAML configuration (see examples/)")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings applied on top of the config")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/latest.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per process (default: the config's `threads`, else OMP_NUM_THREADS, else the "
                        "cores this process may use); on a node shared with other jobs, give your share")


def run(args) -> int:
    from so3krates.threads import use_threads

    from ..config import load_config
    from ..trainer import Trainer

    config_path = args.config
    overrides = list(args.overrides)
    if config_path is not None and "=" in config_path:  # no YAML file, only overrides
        overrides.insert(0, config_path)
        config_path = None
    config = load_config(config_path, overrides)
    use_threads(args.threads if args.threads is not None else config.threads)
    trainer = Trainer(config, resume=args.resume, show_progress=not args.no_progress)
    path = trainer.train()
    if path is not None:
        metrics = trainer.validate(trainer.ema)
        print(f"model written to {path}; validation: energy MAE "
              f"{1000 * metrics['valid_energy_mae_eV_per_atom']:.2f} meV/atom, force MAE "
              f"{1000 * metrics['valid_force_mae_eV_A']:.1f} meV/Å")
    return 0
