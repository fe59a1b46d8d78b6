"""Compile TFLM for a target, only as much as a model needs, cached by content.

TFLM's Makefile lists the library's sources (:func:`~firmware_harness.builds.third_party.library_sources`);
from that list this module keeps the runtime core and, of the kernels, only the files that
define the registrations the model's op resolver calls (plus their ``*_common.cc`` helpers and
the shared kernel utilities). Each object is compiled once into::

    <cache>/build/<tree key>/<target>-<flags hash>/obj/<source path, / as __>.o

where the flags hash covers the compiler's version and every flag, and the tree key the source
archives' hashes, so an object is never reused for other sources or flags. A library archive
``lib/libtflm-<hash of its objects>.a`` is made per op set. The first build of a target compiles
the core (about 60 files) and the model's kernels; a model with new ops compiles only those.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

from firmware_harness.builds import third_party
from firmware_harness.builds.targets import C_FLAGS, COMMON_FLAGS, CORE_OPT, CXX_FLAGS, KERNEL_OPT, Target
from firmware_harness.builds.third_party import DOWNLOADS, FirmwareError

KERNELS_DIR = "tensorflow/lite/micro/kernels/"
#: Kernel-folder sources every model needs (shared helpers, no registration of their own).
KERNEL_SUPPORT = ("kernel_util.cc", "micro_tensor_utils.cc")
#: Kernel-folder sources a kernel needs besides its own and its ``<stem>_common.cc``.
KERNEL_HELPERS = {"decode": ("decode_state.cc", "decode_state_lut.cc", "decode_state_huffman.cc",
                             "decode_state_prune.cc")}
#: Library sources a firmware never calls: test doubles and TFLM's signal-processing library.
NOT_FOR_FIRMWARE = ("test_helpers.cc", "test_helper_custom_ops.cc", "mock_micro_graph.cc",
                    "fake_micro_context.cc", "kernels/kernel_runner.cc")


#: Host (never emulated) builds of the TFLM library only: the harness's speed, with flags that cannot change a
#: result. The kernels are integer arithmetic; the few float computations TFLM does (quantization multipliers,
#: softmax and log tables at Prepare) keep IEEE semantics: no -ffast-math, and -ffp-contract=off, because in
#: C++ GCC's default is to fuse a*b+c into FMA whenever the -march has FMA (x86-64-v3 does). The program itself
#: (main.cc, the exported front end) and CMSIS-DSP keep the target's flags; the bit-exact checks of every clip
#: against TFLM Python prove the outputs unchanged. Measured on the demo model: see README "TAU scale".
HOST_SPEED_OPT = "-O3"
HOST_SPEED_FLAGS = ("-ffp-contract=off", "-fno-fast-math")
HOST_MARCH = "-march=x86-64-v3"  # AVX2: only when this machine's CPU has every feature of the level
_X86_64_V3_CPU_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}


@functools.lru_cache(maxsize=1)
def _host_has_x86_64_v3() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return os.uname().machine == "x86_64" and _X86_64_V3_CPU_FLAGS <= flags


def host_speed_flags(target: Target, source: str) -> list[str]:
    """The extra flags of a TFLM library source on a host target (none on Cortex-M, none for CMSIS-DSP)."""
    if target.emulated or target.prefix or "/cmsis_dsp/" in source:
        return []
    return [HOST_SPEED_OPT, *([HOST_MARCH] if _host_has_x86_64_v3() else []), *HOST_SPEED_FLAGS]


def include_flags(tree: Path, target: Target) -> list[str]:
    d = tree / DOWNLOADS
    flags = [f"-I{tree}", f"-I{d}", f"-I{d / 'gemmlowp'}", f"-I{d / 'flatbuffers' / 'include'}",
             f"-I{d / 'kissfft'}", f"-I{d / 'ruy'}"]
    if target.kernels == "cmsis_nn":
        flags += ["-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0", f"-I{d / 'cmsis'}",
                  f"-I{d / 'cmsis_nn'}", f"-I{d / 'cmsis' / 'CMSIS' / 'Core' / 'Include'}",
                  f"-I{d / 'cmsis_nn' / 'Include'}"]
    return flags


#: The CMSIS-DSP sources the exported front end links: the float32 real FFT and its tables (the
#: length-specific init the front end calls lets the linker keep only that length's tables).
DSP_SOURCES = tuple(f"{DOWNLOADS}/cmsis_dsp/Source/{s}" for s in (
    "TransformFunctions/arm_rfft_fast_f32.c", "TransformFunctions/arm_rfft_fast_init_f32.c",
    "TransformFunctions/arm_cfft_f32.c", "TransformFunctions/arm_cfft_init_f32.c",
    "TransformFunctions/arm_cfft_radix8_f32.c", "TransformFunctions/arm_bitreversal2.c",
    "CommonTables/arm_common_tables.c", "CommonTables/arm_const_structs.c", "CommonTables/arm_mve_tables.c"))


def dsp_flags(tree: Path, target: Target) -> list[str]:
    """CMSIS-DSP's include folders; on the host its portable C (``__GNUC_PYTHON__`` is how
    CMSIS-DSP's own Python wrapper builds it without the Cortex-M core headers)."""
    d = tree / DOWNLOADS
    flags = [f"-I{d / 'cmsis_dsp' / 'Include'}", f"-I{d / 'cmsis_dsp' / 'PrivateInclude'}"]
    if target.prefix:
        return flags + [f"-I{d / 'cmsis' / 'CMSIS' / 'Core' / 'Include'}"]
    return flags + ["-D__GNUC_PYTHON__"]


def compile_command(tree: Path, target: Target, source: str, *, opt: str, dsp: bool = False) -> list[str]:
    """The compiler command for one source (C or C++) of the library or the program; ``dsp``
    adds CMSIS-DSP's flags (the front end, its CMSIS-DSP sources, the program that includes it)."""
    is_c = source.endswith((".c", ".S"))
    tool = f"{target.prefix}{'gcc' if is_c else 'g++'}"
    lang = C_FLAGS if source.endswith(".c") else (() if source.endswith(".S") else CXX_FLAGS)
    extra = dsp_flags(tree, target) if dsp else []
    return [tool, *lang, *COMMON_FLAGS, *target.arch_flags, opt, *include_flags(tree, target), *extra, "-c", source]


def _registrations(tree: Path) -> dict[str, str]:
    """MicroMutableOpResolver method (``AddConv2D``) -> registration function (``Register_CONV_2D``)."""
    text = (tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    pat = re.compile(r"TfLiteStatus\s+(Add\w+)\(\s*const\s+TFLMRegistration&\s+registration\s*=\s*"
                     r"(?:tflite::)?(Register_\w+)\(\)")
    # custom operators register inside the body: AddDecode() { ... = tflite::Register_DECODE(); ...
    custom = re.compile(r"TfLiteStatus\s+(Add\w+)\(\)\s*{\s*const\s+TFLMRegistration&\s+registration\s*=\s*"
                        r"(?:tflite::)?(Register_\w+)\(\)")
    return {**dict(custom.findall(text)), **dict(pat.findall(text))}


def select_sources(tree: Path, sources: list[str], resolver_methods: list[str]) -> list[str]:
    """The library sources a model with these op-resolver methods needs."""
    regs = _registrations(tree)
    unknown = [m for m in resolver_methods if m not in regs]
    if unknown:
        raise FirmwareError(f"TFLM's MicroMutableOpResolver has no default registration for {unknown}")
    wanted = {regs[m] for m in resolver_methods}
    keep, kernel_stems, defined = [], set(), set()
    for src in sources:
        if src.startswith("signal/") or "/signal/" in src or src.endswith(NOT_FOR_FIRMWARE):
            continue
        if not src.startswith(KERNELS_DIR):
            keep.append(src)
            continue
        text = (tree / src).read_text(errors="replace")
        here = {w for w in wanted if re.search(rf"TFLMRegistration\s+{w}\s*\(\s*\)\s*{{", text)}
        if here:
            keep.append(src)
            kernel_stems.add(Path(src).stem)
            defined |= here
    if wanted - defined:
        raise FirmwareError(f"no TFLM kernel source defines {sorted(wanted - defined)}")
    helpers = {f"{s}_common.cc" for s in kernel_stems} | set(KERNEL_SUPPORT)
    helpers |= {h for s in kernel_stems for h in KERNEL_HELPERS.get(s, ())}
    keep += [s for s in sources if s.startswith(KERNELS_DIR) and s.count("/") == KERNELS_DIR.count("/")
             and Path(s).name in helpers]
    return sorted(set(keep))


def _tool_version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "missing"
    return out.splitlines()[0] if out else "unknown"


def target_build_dir(tree: Path, target: Target) -> Path:
    """The cache folder of this tree x target x flags x compiler version."""
    cmd = compile_command(tree, target, "x.cc", opt="") + compile_command(tree, target, "x.c", opt="", dsp=True)
    key = {"cmd": [c.replace(str(tree), "<tree>") for c in cmd], "core": CORE_OPT, "kernel": KERNEL_OPT,
           "compiler": _tool_version(f"{target.prefix}g++")}
    if host_speed_flags(target, "x.cc"):  # only then: Cortex-M builds keep their cached objects
        key["host_speed"] = host_speed_flags(target, "x.cc")
    ident = json.dumps(key)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
    return third_party.cache_root() / "build" / tree.name / f"{target.shares_build or target.name}-{digest}"


@dataclasses.dataclass(frozen=True)
class LibraryBuild:
    path: Path  # the .a archive
    sources: tuple[str, ...]
    compiled: int  # objects compiled in this call (0: all came from the cache)
    seconds: float


def _compile_one(tree: Path, target: Target, src: str, obj: Path) -> str | None:
    opt = KERNEL_OPT if ("/kernels/" in src or "/downloads/" in src) else CORE_OPT
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_name(f".{obj.name}.{os.getpid()}.tmp")
    cmd = compile_command(tree, target, str(tree / src), opt=opt, dsp="/cmsis_dsp/" in src)
    cmd = cmd[:-2] + host_speed_flags(target, src) + cmd[-2:] + ["-o", str(tmp)]  # later -O wins
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{src}:\n{proc.stderr[-3000:]}"
    os.replace(tmp, obj)
    return None


def build_library(tree: Path, target: Target, resolver_methods: list[str], *,
                  jobs: int | None = None, log=print) -> LibraryBuild:
    """The TFLM library for ``target`` with the kernels for ``resolver_methods`` (cached)."""
    t0 = time.perf_counter()
    sources = select_sources(tree, third_party.library_sources(tree, kernels=target.kernels), resolver_methods)
    return _archive(tree, target, sources, "libtflm", "TFLM", t0, jobs=jobs, log=log)


def build_dsp_library(tree: Path, target: Target, *, log=print) -> LibraryBuild:
    """The CMSIS-DSP subset the exported front end needs, for ``target`` (cached)."""
    return _archive(tree, target, list(DSP_SOURCES), "libcmsisdsp", "CMSIS-DSP", time.perf_counter(), log=log)


def _archive(tree: Path, target: Target, sources: list[str], stem: str, what: str, t0: float, *,
             jobs: int | None = None, log=print) -> LibraryBuild:
    """Compile ``sources`` (cached objects) into ``lib/<stem>-<hash of the list>.a``."""
    build = target_build_dir(tree, target)
    # flat names: an archive member keeps only its file name, and the map file then still says
    # which source an object came from (TFLM has two kernel_util.cc, for instance)
    objs = {s: build / "obj" / (s.replace("/", "__") + ".o") for s in sources}
    todo = [s for s, o in objs.items() if not o.is_file()]
    if todo:
        log(f"firmware: compiling {len(todo)} {what} source(s) for {target.name} "
            f"(cached in {build}; later builds reuse them)")
        errors = []
        with cf.ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
            for err in pool.map(lambda s: _compile_one(tree, target, s, objs[s]), todo):
                if err:
                    errors.append(err)
        if errors:
            raise FirmwareError(f"{what} did not compile for {target.name} ({len(errors)} file(s)); first:\n{errors[0]}")
    key = hashlib.sha256("\n".join(sources).encode()).hexdigest()[:12]
    lib = build / "lib" / f"{stem}-{key}.a"
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
        proc = subprocess.run([f"{target.prefix}ar", "rcs", str(tmp), *map(str, objs.values())],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise FirmwareError(f"{target.prefix}ar failed: {proc.stderr}")
        os.replace(tmp, lib)
    return LibraryBuild(lib, tuple(sources), len(todo), time.perf_counter() - t0)
