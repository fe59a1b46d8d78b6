"""``asc fit``'s report: ``fit_report.json`` (the :class:`~asc_cli.fitting.search.FitResult` record),
``fit_report.md`` and ``fit_chart.png`` (int8 accuracy against ms per clip and against RAM, the
limits drawn), written into OUT as files of stage ``fit``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_asc import artifacts

FIT_STAGE = "fit"
#: The report files ``asc fit`` writes into OUT (their sha256 in OUT's stage marker).
REPORT_FILES = ("fit_report.md", "fit_report.json", "fit_chart.png")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _num(v) -> str:
    return "-" if v is None else f"{int(v):,d}"


def _ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def format_report(r) -> str:
    """``fit_report.md`` of FitResult ``r``."""
    lim = r.limits
    lines = [f"# asc fit: {r.mcu}", "",
             f"Limits: flash {lim.flash_bytes:,d} bytes, RAM {lim.ram_bytes:,d} bytes, {lim.ms_per_clip:,.1f} ms per "
             f"clip ({r.clip_seconds:g} s clips). Engine {r.engine}, seed {r.seed}, at most {r.budget_trials} "
             f"trainings. Data: {r.data_dir}.", "", "## Search space", ""]
    lines += [f"- {name}: {', '.join('clip' if v is None and name == 'windows' else 'window' if v is None else str(v) for v in values)}"
              for name, values in dataclasses.asdict(r.space).items()]
    lines += ["", "## Winner", ""]
    if r.winner is None:
        lines += ["No finalist was proven within every limit (see the finalists below)."]
    else:
        lines += [f"**{r.winner}**; its bundle: {r.bundle}", "", "Rebuild it:", "", "```sh", *r.commands, "```"]
    lines += ["", "## Finalists (proven; measured unless marked estimated)", "",
              "| finalist | on front | float acc | int8 acc | arena (measured min) | linked flash | linked RAM | linked "
              "on | est. ms per clip | real-time factor | bit-exact (host, from audio) | validation | within limits |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in r.finalists:
        rtf = "-" if f.real_time_factor is None else f"{f.real_time_factor:.3f}"
        lines.append(f"| {f.candidate.name} | {'yes' if f.candidate.name in r.front else 'no'} | "
                     f"{_pct(f.float_accuracy)} | {_pct(f.int8_accuracy)} | {_num(f.arena_bytes)} | "
                     f"{_num(f.linked_flash_bytes)} | {_num(f.linked_ram_bytes)} | {f.linked_on or '-'} | "
                     f"{_ms(f.ms_per_clip)} | {rtf} | {f.bit_exact_clips} | {'passed' if f.validation_passed else 'FAILED'} | "
                     f"{'yes' if f.fits else 'no: ' + '; '.join(f.broken)} |")
    lines += ["", "ms per clip: `asc profile`'s estimate (exact instruction counts under QEMU priced by the cycle "
                  "model of the microcontroller), front end included; not measured on a chip.", "",
              "## Candidates, in the order visited (estimates of the untrained architecture)", "",
              "| candidate | status | trial | params | M MACs per inference | est. flash | est. RAM | est. ms per clip "
              "(inferences) | trial float acc | trial int8 acc (PTQ) | limits broken |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r.candidates:
        macs = "-" if c.macs_per_inference is None else f"{c.macs_per_inference / 1e6:.1f}"
        why = "; ".join(c.broken) or (c.error or "-")
        lines.append(f"| {c.name} | {c.status} | {c.trial or '-'} | {_num(c.params)} | {macs} | {_num(c.flash_bytes)} | "
                     f"{_num(c.ram_bytes)} | {_ms(c.ms_per_clip)} | {_pct(c.float_accuracy)} | "
                     f"{_pct(c.int8_accuracy)} | {why} |")
    lines += ["", "Estimated flash: the untrained model's linked Cortex-M image (model, TFLM runtime and kernels; the "
                  "front end is added on finalists). Estimated RAM: the export's formula (arena as the header sizes "
                  "it, front end state, static data and stack). Candidates marked infeasible were never trained.", ""]
    return "\n".join(lines)


def plot_fit(r, path: Path) -> None:
    """``fit_chart.png``: int8 accuracy against ms per clip and against RAM; trained candidates
    (their trial's PTQ accuracy, estimated figures) in grey, finalists (measured) in colour, the
    front joined, the winner starred, the limits as dashed lines."""
    import matplotlib  # heavy: only when the chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: after the backend is chosen

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    trained = [c for c in r.candidates if c.int8_accuracy is not None]
    panels = ((axes[0], "ms per clip (estimated)", "ms_per_clip", "ms_per_clip", r.limits.ms_per_clip),
              (axes[1], "RAM bytes", "ram_bytes", "linked_ram_bytes", r.limits.ram_bytes))
    for ax, label, cand_key, fin_key, limit in panels:
        ax.scatter([getattr(c, cand_key) for c in trained], [100 * c.int8_accuracy for c in trained], color="#aaaaaa",
                   label="trained candidates (estimate, PTQ)", zorder=2)
        fins = [f for f in r.finalists if getattr(f, fin_key) is not None]
        ax.scatter([getattr(f, fin_key) for f in fins], [100 * f.int8_accuracy for f in fins],
                   c=["#2a7a2a" if f.fits else "#b03030" for f in fins], label="finalists (measured)", zorder=3)
        front = sorted((f for f in fins if f.candidate.name in r.front), key=lambda f: getattr(f, fin_key))
        if front:
            ax.step([getattr(f, fin_key) for f in front], [100 * f.int8_accuracy for f in front], where="post",
                    color="#2a7a2a", alpha=0.6, label="Pareto front")
        for f in fins:
            if f.candidate.name == r.winner:
                ax.scatter([getattr(f, fin_key)], [100 * f.int8_accuracy], marker="*", s=260, color="#d4a017",
                           edgecolor="black", label="winner", zorder=4)
        ax.axvline(limit, color="#b03030", linestyle="--", label=f"limit {limit:,.0f}")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("int8 accuracy (%)")
    fig.suptitle(f"asc fit on {r.mcu}: accuracy against time and RAM", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_json(r) -> dict:
    """``fit_report.json``: the record's fields, each finalist with ``proven`` and ``fits``."""
    out = dataclasses.asdict(r)
    out["finalists"] = [{**dataclasses.asdict(f), "proven": f.proven, "fits": f.fits} for f in r.finalists]
    return out


def write_report(r, *, out_dir: Path, log=print) -> None:
    """``fit_report.json``, ``fit_report.md`` and ``fit_chart.png`` into ``out_dir`` (stage ``fit``)."""
    text = format_report(r)
    with artifacts.adding_files(Path(out_dir), stage=FIT_STAGE, names=REPORT_FILES) as tmp:
        artifacts.write_json(tmp / "fit_report.json", report_json(r))
        artifacts.atomic_write_text(tmp / "fit_report.md", text)
        plot_fit(r, tmp / "fit_chart.png")
    log("\n" + text)
    log(f"fit: fit_report.md/.json and fit_chart.png in {out_dir}")
