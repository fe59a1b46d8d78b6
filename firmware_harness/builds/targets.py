"""The firmware targets: one flag set per target, in one table (like TFLM's
``targets/*_makefile.inc``).

=================  ==========================  =========  ==========================================
name               compiler                    kernels    runs on
=================  ==========================  =========  ==========================================
host               g++ (x86-64)                reference  this machine
host-cmsis-nn      g++ (x86-64)                cmsis_nn   this machine (CMSIS-NN's portable C)
cortex-m4          arm-none-eabi-g++, hard fp  cmsis_nn   qemu-system-arm -M mps2-an386 (DSP ext.)
cortex-m7          arm-none-eabi-g++, hard fp  cmsis_nn   qemu-system-arm -M mps2-an500 (DSP ext.)
cortex-m33         arm-none-eabi-g++, hard fp  cmsis_nn   qemu-system-arm -M mps2-an505 (DSP ext.)
cortex-m55         arm-none-eabi-g++, hard fp  cmsis_nn   qemu-system-arm -M mps3-an547 (Helium)
cortex-m85         the cortex-m55 build        cmsis_nn   qemu-system-arm -M mps3-an547 (Helium)
=================  ==========================  =========  ==========================================

``cortex-m85`` is the Cortex-M55 image under another name: the M85 executes the same Armv8.1-M +
Helium instruction set (Debian 12's gcc 12 has no ``-mcpu=cortex-m85``, and QEMU 7.2 no M85 CPU),
so its build, library and QEMU run are the M55's (``shares_build``); only the cycle model that
prices the counts differs (``firmware_harness.profiling.cores.CORTEX_M85``).

The common flags are TFLM's Makefile's (``-fno-rtti -fno-exceptions ... -DTF_LITE_STATIC_MEMORY``,
core ``-Os``, kernels ``-O2``) for its ``release_with_logs`` build type (``-DNDEBUG``); the Cortex-M flags are TFLM's ``cortex_m_generic`` ones for
``TARGET_ARCH=cortex-m4+fp`` / ``cortex-m7+fp`` / ``cortex-m33`` / ``cortex-m55`` with gcc (for
``cortex-m7+fp`` and ``cortex-m33`` its ``-mfpu=auto``: FPv5 double precision on the M7, FPv5
single precision on the M33; both have the DSP extension, so CMSIS-NN's ``arm_nn_math_types.h``
sets ``ARM_MATH_DSP`` as on the M4). TFLM's ``cortex_m_qemu`` target forces
``-mfloat-abi=soft`` and runs under ``qemu-arm`` (user mode), which Debian 12's QEMU 7.2 aborts on
for every Cortex-M CPU; these targets run under ``qemu-system-arm`` with semihosting instead
(``firmware/cortex_m/``: vector table, FPU enable, a C start-up of its own in place of rdimon's
crt0, a linker script per board).
"""
from __future__ import annotations

import dataclasses
import shutil

from firmware_harness.builds.third_party import FirmwareError

COMMON_FLAGS = (
    "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
    "-fmessage-length=0", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON",
    # TFLM's BUILD_TYPE=release_with_logs: TFLITE_DCHECKs off, error messages kept. The default
    # build type checks every tensor index in the reference kernels' inner loops: the same outputs
    # (measured bit-identical), 3.9x slower on the host (15.5 vs 4.0 ms per inference, tiny model).
    "-DNDEBUG",
    # micro_time.cc then uses clock(): real time on the host, the host's clock through
    # semihosting under QEMU (emulation time, not a chip's).
    "-DTF_LITE_USE_CTIME",
)
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS = ("-std=c17",)
CORE_OPT = "-Os"
KERNEL_OPT = "-O2"

_ARM_COMMON = ("-mthumb", "-mlittle-endian", "-funsigned-char", "-fomit-frame-pointer",
               "-DTF_LITE_MCU_DEBUG_LOG")


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    description: str
    kernels: str  # "reference" or "cmsis_nn"
    prefix: str  # toolchain prefix: "" (host) or "arm-none-eabi-"
    arch_flags: tuple[str, ...] = ()
    link_flags: tuple[str, ...] = ()
    linker_script: str = ""  # file in firmware/cortex_m/
    qemu: tuple[str, ...] = ()  # qemu-system-arm arguments; empty: runs natively
    debian_packages: tuple[str, ...] = ("g++", "make", "patch")
    shares_build: str = ""  # the target whose compiled TFLM library this one reuses (identical flags)

    @property
    def emulated(self) -> bool:
        return bool(self.qemu)

    @property
    def tools(self) -> tuple[str, ...]:
        tools = (f"{self.prefix}g++", f"{self.prefix}gcc", f"{self.prefix}ar", "make", "patch")
        if self.prefix:
            tools += (f"{self.prefix}size",)
        return tools + (("qemu-system-arm",) if self.qemu else ())

    def missing_tools(self) -> list[str]:
        return [t for t in self.tools if shutil.which(t) is None]

    def check_tools(self) -> None:
        missing = self.missing_tools()
        if missing:
            raise FirmwareError(
                f"target {self.name}: {', '.join(missing)} not found on PATH. Install the Debian packages "
                f"`apt-get install {' '.join(self.debian_packages)}` (never a downloaded toolchain), "
                "or leave this target out of --targets")


_ARM_PACKAGES = ("g++", "make", "patch", "gcc-arm-none-eabi", "libnewlib-arm-none-eabi",
                 "libstdc++-arm-none-eabi-newlib", "qemu-system-arm")


def _qemu_cortex_m(core: str, description: str, *, fpu: tuple[str, ...], machine: str) -> Target:
    """A Cortex-M ``core`` (also its -mcpu and QEMU -cpu): CMSIS-NN kernels, hard float with the
    ``fpu`` flags, semihosting, run on QEMU ``machine`` with its linker script
    (``firmware/cortex_m/<machine>.ld``, - as _)."""
    return Target(core, description, kernels="cmsis_nn", prefix="arm-none-eabi-",
                  arch_flags=(f"-mcpu={core}", *fpu, "-mfloat-abi=hard", *_ARM_COMMON),
                  link_flags=("--specs=rdimon.specs", "-nostartfiles"), linker_script=f"{machine.replace('-', '_')}.ld",
                  qemu=("-M", machine, "-cpu", core), debian_packages=_ARM_PACKAGES)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("host", "x86-64 host, TFLM reference kernels", kernels="reference", prefix=""),
    Target("host-cmsis-nn", "x86-64 host, CMSIS-NN kernels (portable C)", kernels="cmsis_nn", prefix=""),
    _qemu_cortex_m("cortex-m4", "Cortex-M4F (hard float, DSP extension), CMSIS-NN, QEMU mps2-an386",
                   fpu=("-mfpu=fpv4-sp-d16",), machine="mps2-an386"),
    _qemu_cortex_m("cortex-m7", "Cortex-M7 (hard float FPv5-D16, DSP extension), CMSIS-NN, QEMU mps2-an500",
                   fpu=("-mfpu=auto",), machine="mps2-an500"),
    _qemu_cortex_m("cortex-m33", "Cortex-M33 (hard float FPv5-SP, DSP extension, Secure state), CMSIS-NN, "
                   "QEMU mps2-an505", fpu=("-mfpu=auto",), machine="mps2-an505"),
    _qemu_cortex_m("cortex-m55", "Cortex-M55 (hard float, Helium MVE), CMSIS-NN, QEMU mps3-an547",
                   fpu=(), machine="mps3-an547"),
    dataclasses.replace(
        _qemu_cortex_m("cortex-m55", "", fpu=(), machine="mps3-an547"), name="cortex-m85",
        description="Cortex-M85 instruction stream: the Cortex-M55 build (same Armv8.1-M + Helium ISA), "
                    "CMSIS-NN, QEMU mps3-an547", shares_build="cortex-m55"),
)}

DEFAULT_TARGETS = ("host", "host-cmsis-nn", "cortex-m4")


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise FirmwareError(f"unknown firmware target {name!r}; one of {', '.join(TARGETS)}")
    return TARGETS[name]
