"""`so3krates check-data DATA`."""


def add_parser(sub) -> None:
    p = sub.add_parser("check-data", help="find frames that would poison training",
                       description="Report non-finite values, atoms too close, huge forces, energy outliers "
                                   "after the per-element fit and energy/force disagreements; write an "
                                   "exclusion list for `train` (data.exclude=FILE).")
    p.add_argument("data")
    p.add_argument("--format", default=None)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="reader option")
    p.add_argument("--min-distance", type=float, default=0.5, help="Å")
    p.add_argument("--max-force", type=float, default=25.0, help="eV/Å")
    p.add_argument("--max-z", type=float, default=8.0, help="robust z-score of energy residuals")
    p.add_argument("--exclude", default="excluded_frames.txt", help="file for the flagged frame indices")
    p.add_argument("--report", default="data_report.txt", help="file for the findings")


def run(args) -> int:
    from pathlib import Path

    from ..checks import check_frames
    from ..config import parse_yaml
    from ..data import read_frames

    options = dict(item.split("=", 1) for item in args.option)
    frames = read_frames(args.data, args.format, **{k: parse_yaml(v) for k, v in options.items()})
    findings = check_frames(frames, args.min_distance, args.max_force, args.max_z)
    flagged = sorted({f.frame for f in findings})
    Path(args.report).write_text("".join(f"{f.frame}\t{f.origin}\t{f.problem}\n" for f in findings))
    Path(args.exclude).write_text("".join(f"{k}\n" for k in flagged))
    print(f"{len(frames)} frames checked: {len(flagged)} flagged ({len(findings)} findings) -> "
          f"{args.report}, exclusion list {args.exclude}")
    for f in findings[:20]:
        print(f"  frame {f.frame} ({f.origin}): {f.problem}")
    return 0
