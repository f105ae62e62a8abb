"""PNG plots of a scaling sweep (matplotlib, Agg; imported only here so ``import pvmpi`` stays light)."""
from pathlib import Path

GROUP_COLORS = {"deliver": "#1f77b4", "update": "#2ca02c", "learn": "#9467bd", "allreduce": "#d62728",
                "publish": "#8c564b", "halo": "#ff7f0e", "guard": "#bcbd22", "wait": "#aec7e8", "io": "#e377c2", "probes": "#17becf",
                "other": "#7f7f7f"}


def _series(rows):
    """Rows grouped by how the ranks are used; the 1-rank rows start every series."""
    from ..parallel.layout import layout_kind, layout_name

    base = [r for r in rows if r["ranks"] == 1]
    out = {}
    for r in rows:
        kind = layout_kind(r["batchwidth"], r["rows"], r["columns"])
        if kind != "serial":
            out.setdefault(kind, list(base[:1])).append(r)
    if not out and base:
        out["serial"] = base
    for kind in out:
        out[kind].sort(key=lambda r: r["ranks"])
    return out, lambda r: layout_name(r["batchwidth"], r["rows"], r["columns"])


def plot_scaling(rows, out, weak=False, title=""):
    """Write scaling.png (time per step and efficiency vs ranks) and phases.png; returns the file names."""
    try:
        import matplotlib
    except ImportError:
        import sys

        print("pvmpi bench scaling: matplotlib is not installed: no plots (pip install matplotlib)",
              file=sys.stderr)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .run import GROUPS

    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    out = Path(out)
    series, name = _series(ok)
    what = "weak" if weak else "strong"

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, rs in series.items():
        x = [r["ranks"] for r in rs]
        ax1.plot(x, [r["ms_per_step_wall"] for r in rs], "o-", label=kind)
        ax2.plot(x, [r["efficiency"] for r in rs], "o-", label=kind)
    for r in [r for r in ok if r["ranks"] == 1][1:]:  # other 1-rank runs (other thread counts)
        label = f"1 rank x {r['threads']} thread(s)"
        ax1.plot([1], [r["ms_per_step_wall"]], "s", label=label)
        ax2.plot([1], [r["efficiency"]], "s", label=label)
    ranks = sorted({r["ranks"] for r in ok})
    for ax in (ax1, ax2):
        ax.set_xlabel("MPI ranks")
        ax.set_xticks(ranks)
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_ylabel("time per step (ms, wall-clock)")
    ax1.set_ylim(bottom=0)
    ax2.set_ylabel("efficiency")
    ax2.axhline(1.0, color="k", lw=0.8, ls="--")
    known = [r["efficiency"] for r in ok if r["efficiency"] == r["efficiency"]]  # NaN: no 1-rank run to compare
    ax2.set_ylim(0, max(1.2, max(known, default=0.0) * 1.1))
    fig.suptitle(f"{title}: {what} scaling")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(ok) + 2), 4))
    labels = [f"{r['ranks']}: {name(r)}\n{r['threads']} thr" for r in ok]
    bottom = [0.0] * len(ok)
    for g in GROUPS:
        vals = [r.get(f"ms_{g}", 0.0) for r in ok]
        if not any(vals):
            continue
        ax.bar(labels, vals, bottom=bottom, label=g, color=GROUP_COLORS.get(g))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("ms per step (mean over ranks)")
    ax.set_title(f"{title}: where the time goes ({what} scaling)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=110)
    plt.close(fig)
    return ["scaling.png", "phases.png"]


def plot_model(rows, path, title=""):
    """Predicted efficiency and time per step vs ranks, one line per kind of layout (``bench model -o``)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind in ("batch", "spatial", "mixed"):
        rs = [r for r in rows if r["kind"] == kind or (r["ranks"] == 1 and kind != "mixed")]
        if len(rs) < 2:
            continue
        x = [r["ranks"] for r in rs]
        ax1.plot(x, [r["ms_per_step"] for r in rs], "o-", ms=3, label=kind)
        ax2.plot(x, [r["efficiency"] for r in rs], "o-", ms=3, label=kind)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MPI ranks")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_yscale("log")
    ax1.set_ylabel("predicted time per step (ms)")
    ax2.set_ylabel("predicted efficiency")
    ax2.set_ylim(0, 1.05)
    ax2.axhline(0.5, color="k", lw=0.8, ls="--")
    fig.suptitle(f"{title}: performance model", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
