"""DCASE Task 1 complexity rules, one record per challenge year, and a model's figures under them.

What each year's task description says (quoted or closely paraphrased; sources below):

* **2021** (Task 1a, TAU 2020 Mobile, 10 s clips): "the model size should be under 128 kilobytes",
  counting the *non-zero* parameters at the bit width they are stored in (the seed report: "49738
  parameter * 8 bits per parameter / 8 bits per byte = 49738 bytes = 48.57 KB (kibibyte)"; 128 KB
  = 131,072 bytes there). No limit on multiply-accumulates.
* **2022** (TAU 2022 Mobile, 1 s clips): "the maximum number of allowed parameters, including the
  zero-valued ones, was 128 K, with parameters being represented using INT8 numerical format; and the
  maximum number of multiply-accumulate operations at inference time was 30 million"
  (Martín-Morató et al., "Low-complexity acoustic scene classification in DCASE 2022 Challenge").
* **2023, 2024, 2025**: "max memory for model parameters: 128 kB (Kilobyte)" and "max number of MACs
  for inference of a 1-second audio snippet: 30 MMACs (million MACs)"; parameters count at their
  data type, zeros included ("61,148 * 16 bits = 61,148 * 2 B = 122,296 B <= 128 kB"; with 8-bit
  parameters "the maximum number of allowed parameters would be 128,000") - CPJKU
  dcase2024_task1_baseline README; the 2025 task (arXiv 2505.01747) keeps 128 kB and 30 MMACs.

How this toolkit counts (:func:`dcase_complexity`): parameters are the float model's trainable
parameters (:func:`keras_asc.models.trainable_params`: weights, biases and BatchNorm's scale and
offset, as NeSsi counts a PyTorch model; BatchNorm's moving statistics are not parameters), or its
non-zero ones for 2021; each stored in 8 bits (the export is int8; a ``--compress`` export stores
weights in fewer bits, so its figure is an upper bound). 2022's "128 K" is read as 128,000, the
stricter reading and the one the 2024 baseline spells out. MACs are
:func:`keras_asc.models.count_macs` (convolutions and dense layers; BatchNorm is folded into the
convolutions at export, activations and pooling are not counted) of every inference needed to
classify one second of audio: the MACs per clip divided by the clip length, exact for the one-second
clips of TAU 2022 and an estimate for longer clips.
"""
from __future__ import annotations

import dataclasses

from keras_asc.errors import AscError

#: Bits each parameter of an exported model is stored in (full-integer int8).
EXPORT_PARAM_BITS = 8


@dataclasses.dataclass(frozen=True)
class DcaseRules:
    """One year's Task 1 complexity limits and how they count."""

    year: int
    param_limit_bytes: int  # parameter memory allowed
    count_zeros: bool  # False: only non-zero parameters count (2021)
    mac_limit: int | None  # MACs allowed per inference on one second of audio; None: no limit
    wording: str  # the limits in the task's words
    source: str


DCASE_RULES: dict[int, DcaseRules] = {
    2021: DcaseRules(2021, 131_072, False, None, "128 KB (131,072 bytes) of non-zero parameters at their bit width; "
                     "no MAC limit", "DCASE 2021 Task 1a; Zhang, Li and Zhu's report (shared/reference)"),
    2022: DcaseRules(2022, 128_000, True, 30_000_000, "128 K parameters including zeros, INT8; 30 M MACs per "
                     "inference", "Martin-Morato et al., DCASE 2022 Task 1 analysis"),
    2023: DcaseRules(2023, 128_000, True, 30_000_000, "128 kB of parameter memory; 30 MMACs per one-second snippet",
                     "DCASE 2023 Task 1 description"),
    2024: DcaseRules(2024, 128_000, True, 30_000_000, "128 kB of parameter memory; 30 MMACs per one-second snippet",
                     "CPJKU/dcase2024_task1_baseline README"),
    2025: DcaseRules(2025, 128_000, True, 30_000_000, "128 kB of parameter memory; 30 MMACs per one-second snippet",
                     "DCASE 2025 Task 1 (arXiv 2505.01747)"),
}


class DcaseLimitError(AscError, ValueError):
    """The model is over a limit of the chosen DCASE year; the message says by how much and what to do."""


@dataclasses.dataclass(frozen=True)
class DcaseComplexity:
    """A model's complexity as DCASE ``year`` counts it (``size_report.txt``, ``config.json``)."""

    year: int
    params_counted: int  # all trainable parameters, or the non-zero ones (2021)
    count_zeros: bool
    bits_per_param: int
    param_bytes: int  # params_counted * bits_per_param / 8
    param_limit_bytes: int
    macs_per_second_of_audio: int
    mac_limit: int | None
    over_limits: tuple[str, ...]  # what exceeds the limits, in words; empty when within

    JSON_PROPERTIES = ("within_limits",)

    @property
    def within_limits(self) -> bool:
        return not self.over_limits

    def describe(self) -> str:
        """The report's lines (no trailing newline)."""
        what = "parameters (zeros included)" if self.count_zeros else "non-zero parameters"
        lines = [f"DCASE {self.year} complexity ({DCASE_RULES[self.year].wording}):",
                 f"  {self.params_counted:,d} {what} x {self.bits_per_param} bits = {self.param_bytes:,d} bytes "
                 f"of {self.param_limit_bytes:,d} ({100 * self.param_bytes / self.param_limit_bytes:.1f} %)"]
        macs = f"  {self.macs_per_second_of_audio:,d} MACs per inference on one second of audio"
        if self.mac_limit is None:
            lines.append(macs + f" (no MAC limit in {self.year})")
        else:
            lines.append(macs + f" of {self.mac_limit:,d} ({100 * self.macs_per_second_of_audio / self.mac_limit:.1f} %)")
        lines.append("  within the limits" if self.within_limits else "  OVER: " + "; ".join(self.over_limits))
        return "\n".join(lines)


def dcase_rules(year: int) -> DcaseRules:
    if year not in DCASE_RULES:
        raise AscError(f"--dcase-year {year}: no DCASE Task 1 rules for that year; choose one of "
                       f"{', '.join(map(str, DCASE_RULES))} (or 'none')")
    return DCASE_RULES[year]


def dcase_complexity(*, year: int, trainable_params: int, nonzero_params: int, macs_per_second_of_audio: int,
                     bits_per_param: int = EXPORT_PARAM_BITS) -> DcaseComplexity:
    """Figures of a model (parameter counts as ints, MACs per second of audio as an int) under
    DCASE ``year``'s rules (:data:`DCASE_RULES`)."""
    rules = dcase_rules(year)
    counted = trainable_params if rules.count_zeros else nonzero_params
    nbytes = -(-counted * bits_per_param // 8)
    over = []
    if nbytes > rules.param_limit_bytes:
        over.append(f"parameters take {nbytes:,d} bytes, {nbytes - rules.param_limit_bytes:,d} over the "
                    f"{rules.param_limit_bytes:,d} allowed")
    if rules.mac_limit is not None and macs_per_second_of_audio > rules.mac_limit:
        over.append(f"{macs_per_second_of_audio:,d} MACs per inference on one second of audio, "
                    f"{macs_per_second_of_audio - rules.mac_limit:,d} over the {rules.mac_limit:,d} allowed")
    return DcaseComplexity(year=year, params_counted=counted, count_zeros=rules.count_zeros,
                           bits_per_param=bits_per_param, param_bytes=nbytes, param_limit_bytes=rules.param_limit_bytes,
                           macs_per_second_of_audio=int(macs_per_second_of_audio), mac_limit=rules.mac_limit,
                           over_limits=tuple(over))


def complexity_table(*, trainable_params: int, nonzero_params: int, macs_per_second_of_audio: int,
                     bits_per_param: int = EXPORT_PARAM_BITS) -> str:
    """A Markdown table of the model's figures under every year's rules (:data:`DCASE_RULES`)."""
    rows = ["| DCASE year | parameters counted | parameter bytes / limit | MACs per second of audio / limit | within |",
            "|---|---|---|---|---|"]
    for year in DCASE_RULES:
        c = dcase_complexity(year=year, trainable_params=trainable_params, nonzero_params=nonzero_params,
                             macs_per_second_of_audio=macs_per_second_of_audio, bits_per_param=bits_per_param)
        macs = f"{c.macs_per_second_of_audio:,d} / " + ("no limit" if c.mac_limit is None else f"{c.mac_limit:,d}")
        rows.append(f"| {year} | {c.params_counted:,d} ({'all' if c.count_zeros else 'non-zero'}) | "
                    f"{c.param_bytes:,d} / {c.param_limit_bytes:,d} | {macs} | {'yes' if c.within_limits else 'NO'} |")
    return "\n".join(rows)


def check_dcase_limits(c: DcaseComplexity) -> None:
    """Refuse (:class:`DcaseLimitError`) a model over its DCASE year's limits, as an over-budget
    flatbuffer is refused: nothing is written."""
    if c.over_limits:
        raise DcaseLimitError(
            f"the model is over DCASE {c.year}'s complexity limits: {'; '.join(c.over_limits)}. Nothing was "
            "written. Use a smaller model (e.g. --model-arg width=...), fewer frames per inference (`asc train "
            "--window-frames W`), or export without DCASE's limits (--dcase-year none) or under another year's "
            f"(--dcase-year {', '.join(map(str, DCASE_RULES))})")
