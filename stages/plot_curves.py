"""Stage `plot_curves`: the per-round curves of metrics/curves/*.csv as one PNG (plots/curves.png),
for reading without `dvc plots show`."""
from __future__ import annotations

import pandas as pd
from common import METRICS, ROOT, shown

from iics.plots import save_curves


def read_csv(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """metrics/curves/<name>.csv, which the report stage always writes (with no rows when there
    is nothing to draw); missing, unreadable, or rows without the `columns` drawn from it, ends
    the stage in one line naming it."""
    path = METRICS / "curves" / f"{name}.csv"
    if not path.is_file():
        raise SystemExit(f"plot_curves: {shown(path)}: not found (the report stage writes it; run that first)")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # written with no rows (e.g. nothing evaluated)
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        reason = " ".join(str(error).split())
        raise SystemExit(f"plot_curves: {shown(path)}: not a readable CSV ({reason}); rerun the report stage") from None
    lacking = [column for column in columns if column not in frame.columns]
    if len(frame) and lacking:
        raise SystemExit(f"plot_curves: {shown(path)}: has no column {', '.join(lacking)} (columns "
                         f"{list(frame.columns)}); rerun the report stage")
    return frame


def main() -> None:
    quality = ("round", "nmi", "pairwise_precision")
    save_curves(read_csv("eval", ("round", "mAP", "rank1")), read_csv("clusters", ("round", "intra_total")),
                read_csv("intra_quality", quality), read_csv("inter_quality", quality), ROOT / "plots" / "curves.png")
    print("plot_curves: plots/curves.png")


if __name__ == "__main__":
    main()
