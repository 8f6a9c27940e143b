"""`so3krates doctor`: check an installation and say what to install or set."""


def add_parser(sub) -> None:
    sub.add_parser("doctor", help="check the installation (versions, OpenMM platforms, plugins, GPU, threads)",
                   description="Print what is needed to debug an installation: versions of torch (and its CUDA), "
                               "OpenMM, openmm-torch, openmm-ml and openmm-so3krates; the OpenMM platforms that "
                               "loaded and where openmm-torch's TorchForce can run; our compiled ops and OpenMM "
                               "plugin; OpenMM's plugin load failures with what to do about each; whether torch "
                               "sees a GPU; thread settings. Exits with 1 when something this package needs is "
                               "missing.")


def run(args) -> int:
    from ..doctor import NOTE, PROBLEM, diagnose

    findings = diagnose()
    marks = {PROBLEM: "PROBLEM", NOTE: "note"}
    for finding in findings:
        print(f"{marks.get(finding.status, 'ok'):8s} {finding.topic:22s} {finding.text}")
    problems = [f for f in findings if f.status == PROBLEM]
    print(f"\n{len(problems)} problem{'s' if len(problems) != 1 else ''} found" if problems else "\nno problems found")
    return 1 if problems else 0
