"""Stage `plot_curves`: the per-round curves of metrics/curves/*.csv as one PNG (plots/curves.png),
for reading without `dvc plots show`."""
from __future__ import annotations

import pandas as pd
from common import METRICS, ROOT

from iics.plots import save_curves


def read_csv(name: str) -> pd.DataFrame:
    path = METRICS / "curves" / f"{name}.csv"
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # written with no rows (e.g. nothing evaluated)
        return pd.DataFrame()


def main() -> None:
    save_curves(read_csv("eval"), read_csv("clusters"), read_csv("intra_quality"), read_csv("inter_quality"),
                ROOT / "plots" / "curves.png")
    print("plot_curves: plots/curves.png")


if __name__ == "__main__":
    main()
