"""The flash cache simulator of the profiling plugin (firmware/qemu_plugin/cache_model.c), compiled
alone with the host's gcc into a shared library and driven with hand-made address streams whose
hits and misses are known; and the plugin's cache= arguments of the MCU rows."""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from firmware_harness.profiling import qemu_plugin
from tflite_export.mcu_targets import MCU_TARGETS

HIT, MISS, PREFETCH_HIT = 0, 1, 2


class AscCache(ctypes.Structure):
    """cache_model.h's AscCache, field for field."""

    _fields_ = [("lines", ctypes.c_uint32), ("line_bytes", ctypes.c_uint32), ("ways", ctypes.c_uint32),
                ("fill_bytes", ctypes.c_uint32), ("prefetch", ctypes.c_int), ("sets", ctypes.c_uint32),
                ("line_shift", ctypes.c_uint32), ("fill_shift", ctypes.c_uint32),
                ("tags", ctypes.POINTER(ctypes.c_uint64)), ("valid", ctypes.POINTER(ctypes.c_uint32)),
                ("last_use", ctypes.POINTER(ctypes.c_uint64)), ("hint", ctypes.POINTER(ctypes.c_uint32)),
                ("clock", ctypes.c_uint64),
                ("prefetch_unit", ctypes.c_uint64), ("prefetch_valid", ctypes.c_int),
                ("prefetch_since", ctypes.c_uint64), ("last_prefetch_lead", ctypes.c_uint64)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc (apt-get install gcc): the cache simulator is C")
    lib = tmp_path_factory.mktemp("cache_model") / "cache_model.so"
    subprocess.run([gcc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-o", str(lib),
                    str(qemu_plugin.PLUGIN_DIR / "cache_model.c")], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.AscCacheInit.argtypes = [ctypes.POINTER(AscCache)] + [ctypes.c_uint32] * 4 + [ctypes.c_int]
    dll.AscCacheAccess.argtypes = [ctypes.POINTER(AscCache), ctypes.c_uint64]
    dll.AscCacheFetch.argtypes = [ctypes.POINTER(AscCache), ctypes.c_uint64, ctypes.c_uint32]
    dll.AscCacheFree.argtypes = [ctypes.POINTER(AscCache)]
    return dll


@pytest.fixture
def make(model):
    made = []

    def make_cache(lines: int, line_bytes: int, ways: int, fill_bytes: int | None = None, prefetch: bool = False):
        c = AscCache()
        assert model.AscCacheInit(ctypes.byref(c), lines, line_bytes, ways, fill_bytes or line_bytes, int(prefetch)) == 0
        made.append(c)
        return c

    yield make_cache
    for c in made:
        model.AscCacheFree(ctypes.byref(c))


def _reads(model, cache, addresses) -> list[int]:
    return [model.AscCacheAccess(ctypes.byref(cache), a) for a in addresses]


def test_direct_mapped_lines_one_cache_size_apart_evict_each_other(model, make):
    c = make(lines=4, line_bytes=16, ways=1)  # 64 bytes: 0x000 and 0x040 share set 0
    assert _reads(model, c, [0x000, 0x004, 0x040, 0x000, 0x010, 0x040]) == [MISS, HIT, MISS, MISS, MISS, MISS]


def test_two_way_set_evicts_the_least_recently_used_line(model, make):
    c = make(lines=4, line_bytes=16, ways=2)  # 2 sets: 0x00, 0x20, 0x40 all in set 0
    # A, B, A (A most recent), C evicts B (the LRU), then A hits and B misses
    assert _reads(model, c, [0x00, 0x20, 0x00, 0x40, 0x00, 0x20]) == [MISS, MISS, HIT, MISS, HIT, MISS]
    # that last miss evicted C (A was used more recently): A hits, C misses and evicts B, B misses
    assert _reads(model, c, [0x00, 0x40, 0x20]) == [HIT, MISS, MISS]


def test_a_loop_larger_than_the_cache_misses_every_time_under_lru(model, make):
    c = make(lines=4, line_bytes=16, ways=4)  # fully associative, 64 bytes
    loop = [16 * i for i in range(5)]  # 80 bytes
    assert _reads(model, c, loop * 3) == [MISS] * 15
    d = make(lines=8, line_bytes=16, ways=8)
    assert _reads(model, d, loop * 3) == [MISS] * 5 + [HIT] * 10


def test_a_sectored_line_is_filled_one_flash_read_at_a_time(model, make):
    c = make(lines=2, line_bytes=32, ways=2, fill_bytes=8)  # the L4+ ART's 4 x 64-bit lines
    assert _reads(model, c, [0x00, 0x04, 0x08, 0x18, 0x00, 0x10]) == [MISS, HIT, MISS, MISS, HIT, MISS]


def test_sequential_fetch_hits_the_prefetch_buffer_and_reports_the_lead(model, make):
    c = make(lines=8, line_bytes=16, ways=8, prefetch=True)
    fetch = lambda a, n: model.AscCacheFetch(ctypes.byref(c), a, n)  # noqa: E731
    assert fetch(0x100, 3) == MISS  # the buffer is aimed at 0x110 while these 3 instructions run
    assert fetch(0x110, 5) == PREFETCH_HIT and c.last_prefetch_lead == 3
    assert fetch(0x120, 2) == PREFETCH_HIT and c.last_prefetch_lead == 5
    assert fetch(0x100, 3) == HIT  # the prefetched units went into the cache
    assert fetch(0x200, 1) == MISS  # a branch away: not the buffered unit
    # data reads neither use nor move the buffer
    assert model.AscCacheAccess(ctypes.byref(c), 0x210) == MISS and fetch(0x210, 1) == HIT


def test_without_prefetch_sequential_fetch_misses(model, make):
    c = make(lines=8, line_bytes=16, ways=8)
    assert [model.AscCacheFetch(ctypes.byref(c), a, 4) for a in (0x100, 0x110, 0x120)] == [MISS] * 3


def test_geometries_the_simulator_cannot_model_are_refused(model):
    c = AscCache()
    for bad in [(0, 16, 1, 16), (6, 16, 4, 16), (4, 24, 1, 24), (4, 16, 1, 32), (4, 512, 1, 8)]:
        assert model.AscCacheInit(ctypes.byref(c), *bad, 0) == -1


def test_every_cache_geometry_of_the_table_is_one_the_simulator_accepts(model):
    for m in MCU_TARGETS.values():
        for g in (m.icache, m.dcache):
            if g is not None:
                c = AscCache()
                assert model.AscCacheInit(ctypes.byref(c), g.lines, g.line_bytes, g.ways, g.fill_bytes, 0) == 0, m.name
                model.AscCacheFree(ctypes.byref(c))


def test_cache_arguments_follow_the_rows():
    m4 = qemu_plugin.simulated_mcus("cortex-m4")
    f4 = MCU_TARGETS["stm32f407"]
    assert m4["stm32f407"] == (f"{f4.icache.lines}x{f4.icache.line_bytes}x{f4.icache.ways}x{f4.icache.fill_bytes}p/"
                               f"{f4.dcache.lines}x{f4.dcache.line_bytes}x{f4.dcache.ways}x{f4.dcache.fill_bytes}/"
                               f"{f4.flash_wait_states * f4.flash_clock_divider}")
    assert qemu_plugin.simulated_mcus("cortex-m33")["nrf5340"].split("/")[1] == "i"  # one cache for I and D
    assert qemu_plugin.simulated_mcus("cortex-m55") == {}  # code in the ITCM
