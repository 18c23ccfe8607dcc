"""Fine-tune the Knockoff embedder: `python train.py [--params params.yaml] [--out models/checkpoint.pt]`.

A thin entry point for the DVC `train` stage; the loop itself is knockoff/model/training.py.
"""

import argparse
from pathlib import Path

from knockoff.model.training import TrainConfig, train
from knockoff.params import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("models/checkpoint.pt"))
    args = parser.parse_args()
    train(load_config(TrainConfig, "train", args.params), args.out)


if __name__ == "__main__":
    main()
