#!/usr/bin/env bash
# Creates the peers' virtual environment for `so3krates bench --peer-python` (MACE, TorchMD-Net, and
# so3krates-torch with its SO3LR for the SO3LR rows): mace-torch pins e3nn
# 0.4.4, which conflicts with ours, so MACE and TorchMD-Net run in their own environment (same torch
# and OpenMM stack).
#   bash benchmarks/setup_peers.sh [DIR]    (default: .venv-peers)
#   so3krates bench --peer-python DIR/bin/python
set -euo pipefail
dir="${1:-.venv-peers}"
python3.11 -m venv "$dir"
"$dir/bin/pip" install torch==2.9.1 openmm==8.5.2 openmmtorch==1.5 openmmml==1.7 mace-torch==0.3.16 torchmd-net==3.1.0 \
    so3krates-torch==0.2.1
echo "peer environment ready: so3krates bench --peer-python $dir/bin/python"
