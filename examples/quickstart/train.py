"""A tiny "training" loop: gradient descent on a quadratic, reporting loss and accuracy."""

import argparse
import math


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    w = 5.0
    for epoch in range(args.epochs):
        grad = 2 * (w - 1.0)
        w -= args.lr * grad
        loss = (w - 1.0) ** 2
        accuracy = math.exp(-loss)
        print(f"step={epoch} loss={loss:.6f} accuracy={accuracy:.6f}", flush=True)


if __name__ == "__main__":
    main()
