"""Exact instruction counts from the linked Cortex-M image under QEMU with our TCG plugin
(firmware_harness/profiling/): deterministic, adding up to the whole Invoke, the same kernels'
counts with and without operator marks, per-frame front-end counts, flash data reads (weights at
least once per inference, literal loads left to the cycle model), and a checker that refuses
inconsistent plugin output.

The QEMU tests run the tiny export, 1-2 inferences (or one clip) each."""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from firmware_harness.builds import program, third_party
from firmware_harness.builds.targets import get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.profiling import (
    disassembly,
    elf_symbols,
    execution_profile,
    instruction_counts,
    instructions,
    labelling,
    qemu_plugin,
)
from tests.firmware_harness.conftest import QUIET, require_targets
from tflite_export.flatbuffer import describe_tensors, operator_names, read_model

#: Thumb-2 marking cost, see firmware_harness.profiling.execution_profile's docstring: an operator row holds AscMarkOpBegin (movs, bx lr)
#: and EndEvent's tail call, a between-operators row AscMarkOpEnd (2) and BeginEvent's tail call.
MARKERS_PER_OPERATOR_ROW = 3
MARKERS_PER_BETWEEN_ROW = 3
#: With operator marks, an operator additionally runs BeginEvent + EndEvent (1 + 1), the two mark
#: functions (2 + 2), InvokeSubgraph's non-null profiler path and ~ScopedMicroProfiler's call.
PROFILER_FUNCTIONS = {"AscMarkOpBegin", "AscMarkOpEnd", "AscOpProfiler::BeginEvent(char const*)",
                      "AscOpProfiler::EndEvent(unsigned long)", "tflite::MicroInterpreterGraph::InvokeSubgraph(int)",
                      "tflite::ScopedMicroProfiler::~ScopedMicroProfiler()"}


def _build(export: Path, target: str, out: Path) -> program.Program:
    require_targets(target)
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    return program.build_program(export, get_target(target), out, tree=tree, **QUIET)


@pytest.fixture(scope="module")
def m4_program(tiny_export, tmp_path_factory) -> program.Program:
    return _build(tiny_export, "cortex-m4", tmp_path_factory.mktemp("icount_m4"))


def _header_int(header: Path, name: str) -> int:
    return int(header.read_text().split(f"constexpr int {name} = ")[1].split(";")[0])


@pytest.fixture(scope="module")
def inputs(tiny_export) -> np.ndarray:
    """Two inferences' int8 inputs."""
    n = _header_int(tiny_export / "model_input.h", "kNumMels") * _header_int(tiny_export / "model_input.h", "kNumFrames")
    return np.random.default_rng(0).integers(-128, 128, size=(2, n)).astype(np.int8)


@pytest.fixture(scope="module")
def m4_profiles(m4_program, inputs, tiny_export, tmp_path_factory):
    """Two --profile ops runs and one --profile invoke run of the same two inputs on cortex-m4."""
    model = (tiny_export / "model.tflite").read_bytes()
    work = tmp_path_factory.mktemp("icount_runs")
    a, b = (instruction_counts.profile_inferences(m4_program, work / f"run{i}", int8=inputs, model=model, **QUIET) for i in (0, 1))
    whole = instruction_counts.profile_inferences(m4_program, work / "invoke", int8=inputs, model=model, mode="invoke", **QUIET)
    return a, b, whole


@pytest.mark.slow
def test_operator_rows_add_up_to_the_whole_invoke(m4_profiles, m4_program, inputs, tiny_export, tmp_path):
    p, _, _ = m4_profiles
    ops = operator_names(read_model((tiny_export / "model.tflite").read_bytes()))
    assert p.target == "cortex-m4" and p.mode == "ops" and len(p.invokes) == len(inputs) == 2
    for inv in p.invokes:
        assert [o.op_type for o in inv.operators] == ops and [o.op_index for o in inv.operators] == list(range(len(ops)))
        assert sum(o.instructions for o in inv.operators) + inv.interpreter_instructions == inv.instructions
        # the whole comes from QEMU's per-instruction counter, the rows from the TB counts
        segs = p.invoke_segments(inv.index)
        assert sum(s.instructions for s in segs) == inv.instructions
        assert all(o.marker_instructions == MARKERS_PER_OPERATOR_ROW for o in inv.operators)
        between = [s for s in segs if s.mark == "AscMarkOpEnd"]
        assert len(between) == len(ops) and all(s.marker_instructions == MARKERS_PER_BETWEEN_ROW for s in between[:-1])
        assert between[-1].marker_instructions > MARKERS_PER_BETWEEN_ROW  # + AscProfiledInvoke after Invoke returned
        assert min(o.instructions for o in inv.operators) > 1000 and inv.interpreter_instructions < 2000
    assert sum(s.instructions for s in p.segments) == p.total_instructions
    # the profiled run's outputs are the normal run's, bit for bit
    plain = program.run_program(m4_program, tmp_path, int8=inputs)
    np.testing.assert_array_equal(p.outputs, plain.outputs)
    assert "| **whole Invoke** |" in execution_profile.format_invoke(p, 0)


@pytest.mark.slow
def test_per_address_and_taken_counts_are_consistent(m4_profiles, m4_program):
    p, _, _ = m4_profiles
    mark = p.functions.address_of("AscMarkOpBegin")
    for s in p.invoke_segments(0):
        assert sum(s.address_counts.values()) == s.instructions
        assert set(s.taken_counts) <= set(s.address_counts)
        assert all(0 <= s.taken_counts[a] <= s.address_counts[a] for a in s.taken_counts)
    op = p.operator_segments(0, invoke=0)[0]
    # AscMarkOpBegin is `movs r0, #2; bx lr`: both run once, and the return always leaves
    assert op.address_counts[mark] == op.address_counts[mark + 2] == 1
    assert op.taken_counts[mark + 2] == 1
    # whenever a TB-ending instruction was not left, execution went on at the next instruction
    code = disassembly.disassemble(m4_program.path)
    counts, taken = execution_profile.merge_counts(p.invoke_segments(0))
    assert set(counts) <= set(code)  # every counted address is an instruction of the ELF
    for a, t in taken.items():
        fall = counts[a] - t
        if fall:
            assert counts.get(a + code[a].size, 0) >= fall


@pytest.mark.slow
def test_two_runs_give_identical_counts(m4_profiles):
    a, b, _ = m4_profiles
    assert a.invokes == b.invokes
    assert a.deterministic_segments() == b.deterministic_segments()
    assert [s.instructions for s in a.deterministic_segments()] == [s.instructions for s in b.deterministic_segments()]


@pytest.mark.slow
def test_flash_data_reads_cover_the_weights_and_are_deterministic(m4_profiles, m4_program, tiny_export):
    """Every CONV_2D reads its filter from flash at least once per inference; the counts repeat
    exactly; the Invoke's epilogue after its last operator (returns, POPs from the SRAM stack)
    reads nothing from flash."""
    a, b, whole = m4_profiles
    model = read_model((tiny_export / "model.tflite").read_bytes())
    tensors, ops = describe_tensors(model), model.subgraphs[0].operators
    (lo, hi), = a.flash_ranges
    nm = subprocess.run(["arm-none-eabi-nm", str(m4_program.path)], capture_output=True, text=True).stdout
    weights = int(next(line.split()[0] for line in nm.splitlines() if line.endswith(" g_model_data")), 16)
    assert lo <= weights < hi and hi < 0x20000000  # the model is in flash, the RAM is not
    convs = 0
    for inv in range(2):
        for o in a.invokes[inv].operators:
            (seg,) = a.operator_segments(o.op_index, invoke=inv)
            assert seg.flash_data_reads <= seg.flash_data_bytes <= 8 * seg.flash_data_reads
            if o.op_type == "CONV_2D":
                flt = tensors[ops[o.op_index].inputs[1]]
                assert flt.constant and seg.flash_data_bytes >= flt.nbytes > 0, (o.op_index, flt.name)
                assert seg.flash_data_reads >= flt.nbytes // 4
                convs += 1
        segs = a.invoke_segments(inv)
        assert segs[-1].kind == "interpreter" and segs[-1].flash_data_reads == segs[-1].flash_data_bytes == 0
        reads, nbytes = execution_profile.merge_flash_reads(segs)
        assert reads == sum(s.flash_data_reads for s in segs) and nbytes > sum(t.nbytes for t in tensors if t.constant)
        # the same work without operator marks reads the same weights (the profiler's own reads aside)
        plain_reads, _ = execution_profile.merge_flash_reads(whole.invoke_segments(inv))
        assert 0 < reads - plain_reads < 10 * len(ops)
    assert convs > 0
    assert [(s.flash_data_reads, s.flash_data_bytes) for s in a.deterministic_segments()] == \
        [(s.flash_data_reads, s.flash_data_bytes) for s in b.deterministic_segments()]
    assert execution_profile.merge_flash_reads(a.invoke_segments(0)) == execution_profile.merge_flash_reads(a.invoke_segments(1))


@pytest.mark.slow
def test_literal_loads_are_left_to_the_cycle_model(m4_profiles, m4_program):
    """The plugin's loads are exactly the loads the cycle model prices as data reads plus its
    LOAD_LITERAL class, which the plugin leaves out (priced with the code's flash lines): nothing
    twice, nothing missed, over every instruction QEMU translated. Loads based on SP (the stack, in
    RAM) are not instrumented either."""
    p, _, _ = m4_profiles
    code = disassembly.disassemble(m4_program.path)
    data = (instructions.LOAD, instructions.LOAD_MULTIPLE, instructions.MVE_LOAD)
    load, literal, stack = qemu_plugin.FLAG_LOAD, qemu_plugin.FLAG_LITERAL, qemu_plugin.FLAG_STACK

    def on_stack(ins) -> bool:
        m = re.search(r"\[\s*(\w+)", ins.operands)
        return ins.base in ("pop", "vpop") or (m.group(1) if m else ins.operands.split(",")[0].strip("! ")) == "sp"

    wrong = {}
    for a, flags in p.instruction_flags.items():
        ins = code.get(a)
        if ins is None:
            wrong[hex(a)] = ("no instruction in the ELF's disassembly", flags)
            continue
        cls = instructions.classify(ins)
        want = (load | literal if cls == instructions.LOAD_LITERAL
                else load | (stack if on_stack(ins) else 0) if cls in data or ins.base in ("tbb", "tbh") else 0)
        if flags != want:
            wrong[hex(a)] = (ins.mnemonic, ins.operands, flags, want)
    assert not wrong
    kinds = Counter(p.instruction_flags.values())
    assert kinds[load] > 1000 and kinds[load | literal] > 50 and kinds[load | stack] > 500


@pytest.mark.slow
def test_without_flash_ranges_no_reads_are_counted_and_instructions_are_the_same(m4_profiles, m4_program, inputs,
                                                                                  tiny_export, tmp_path):
    p, _, _ = m4_profiles
    model = (tiny_export / "model.tflite").read_bytes()
    q = instruction_counts.profile_inferences(m4_program, tmp_path, int8=inputs[:1], model=model, count_flash_reads=False,
                                  **QUIET)
    assert q.flash_ranges == () and all(s.flash_data_reads is s.flash_data_bytes is None for s in q.segments)
    assert execution_profile.merge_flash_reads(q.invoke_segments(0)) == (None, None)
    assert q.invokes[0] == p.invokes[0]  # memory callbacks change no count
    assert [s.address_counts for s in q.invoke_segments(0)] == [s.address_counts for s in p.invoke_segments(0)]


@pytest.mark.slow
def test_operator_marks_leave_the_kernels_counts_unchanged(m4_profiles, tiny_export):
    """--profile invoke runs the interpreter without a profiler, as a normal run does; with
    operator marks the only extra instructions are the profiler's own, a constant per operator."""
    ops, _, whole = m4_profiles
    n_ops = len(ops.invokes[0].operators)
    assert whole.mode == "invoke" and all(not inv.operators for inv in whole.invokes)
    np.testing.assert_array_equal(ops.outputs, whole.outputs)
    per_op = set()
    for i in range(2):
        a, _ = execution_profile.merge_counts(ops.invoke_segments(i))
        b, _ = execution_profile.merge_counts(whole.invoke_segments(i))
        diff = Counter(a)
        diff.subtract(b)
        where = {ops.functions.name_at(addr) for addr, d in diff.items() if d}
        assert where <= PROFILER_FUNCTIONS, where - PROFILER_FUNCTIONS
        assert all(d >= 0 for d in diff.values())
        extra = ops.invokes[i].instructions - whole.invokes[i].instructions
        assert extra == sum(diff.values()) and extra % n_ops == 0
        per_op.add(extra // n_ops)
    assert len(per_op) == 1 and 8 <= per_op.pop() <= 24
    assert whole.invokes[0].marker_instructions < 10


@pytest.mark.slow
def test_front_end_frames_are_counted(m4_program, tiny_export, tiny_dataset, tmp_path):
    model = (tiny_export / "model.tflite").read_bytes()
    wav = sorted((tiny_dataset / "audio").glob("*.wav"))[0]
    n_mels = _header_int(tiny_export / "model_input.h", "kNumMels")
    p = instruction_counts.profile_audio(m4_program, tmp_path / "p", wav_paths=[wav], n_mels=n_mels, model=model, **QUIET)
    plain = program.run_program_audio(m4_program, tmp_path / "plain", wav_paths=[wav], n_mels=n_mels)
    np.testing.assert_array_equal(p.outputs, plain.outputs)
    np.testing.assert_array_equal(p.outputs.shape, (1, 10))
    (clip,) = p.frontend
    assert len(clip.frame_instructions) == plain.frontend_frames > 10
    # every frame is one FFT and mel projection: the steady-state frames cost the same to within 1 %
    middle = np.array(clip.frame_instructions[1:-1])
    assert middle.min() > 10_000 and middle.max() < 1.01 * middle.min()
    fe = [s for s in p.segments if s.kind == "frontend"]
    assert sum(s.instructions for s in fe) == clip.instructions
    assert {s.frame for s in fe} == set(range(plain.frontend_frames)) | ({None} if clip.tail_instructions else set())
    assert clip.marker_instructions == sum(s.marker_instructions for s in fe) > 0
    assert len(p.invokes) == 1 and len(p.invokes[0].operators) == len(operator_names(read_model(model)))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m33"])
def test_counts_on_the_other_cortex_m_targets(target, tiny_export, inputs, tmp_path):
    prog = _build(tiny_export, target, tmp_path / "build")
    model = (tiny_export / "model.tflite").read_bytes()
    p = instruction_counts.profile_inferences(prog, tmp_path / "run", int8=inputs[:1], model=model, **QUIET)
    inv = p.invokes[0]
    assert p.target == target and len(inv.operators) == len(operator_names(read_model(model)))
    assert sum(o.instructions for o in inv.operators) + inv.interpreter_instructions == inv.instructions
    plain = program.run_program(prog, tmp_path / "plain", int8=inputs[:1])
    np.testing.assert_array_equal(p.outputs, plain.outputs)


# --- the plugin build and the checks, without QEMU ------------------------------------------------

def test_the_plugin_builds_once_and_exports_the_api():
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    a = qemu_plugin.build_plugin(**QUIET)
    assert qemu_plugin.build_plugin(**QUIET) == a and a.parent == third_party.cache_root() / "qemu_plugin"
    syms = subprocess.run(["nm", "-D", "--defined-only", str(a)], capture_output=True, text=True).stdout
    assert {"qemu_plugin_install", "qemu_plugin_version"} <= {line.split()[-1] for line in syms.splitlines()}


def _tb(tb_id: int, addrs: list[int], sizes: list[int], flags: list[int] | None = None) -> bytes:
    n = len(addrs)
    return (np.array([1, tb_id], "<u4").tobytes() + np.array([addrs[0]], "<u8").tobytes()
            + np.array([n, 0], "<u4").tobytes() + np.array(addrs, "<u8").tobytes()
            + np.array(sizes, "u1").tobytes() + np.array(flags or [0] * n, "u1").tobytes() + bytes(-2 * n % 4))


def _segment(kind: int, start: int, entries: list[tuple[int, int, int]], flash: tuple[int, int] = (0, 0)) -> bytes:
    e = np.zeros(len(entries), qemu_plugin._ENTRY)
    for i, (tb, count, taken) in enumerate(entries):
        e[i] = (tb, 0, count, taken)
    return (np.array([2], "<u4").tobytes() + np.array([kind], "<i4").tobytes()
            + np.array([start, *flash], "<u8").tobytes() + np.array([len(entries), 0], "<u4").tobytes() + e.tobytes()
            + np.array([0, 0], "<u4").tobytes())  # no simulated memory system


def _end(icount_at_exit: int, inside: int = 0) -> bytes:
    return np.array([3, inside], "<u4").tobytes() + np.array([icount_at_exit, 3], "<u8").tobytes()


FUNCS = elf_symbols.FunctionTable(starts=(0x100, 0x200), ends=(0x104, 0x300), names=("AscMarkOpBegin", "kernel"))


def _file(tmp_path, *records: bytes, flash: tuple[tuple[int, int], ...] = ((0, 0x1000),),
          version: int = qemu_plugin.FORMAT_VERSION) -> Path:
    path = tmp_path / "icount.bin"
    head = (qemu_plugin.FORMAT_MAGIC + np.array([version, len(qemu_plugin.MARK_SYMBOLS), len(flash), 0], "<u4").tobytes()
            + np.array(flash, "<u8").tobytes())
    path.write_bytes(head + b"".join(records))
    return path


def _synthetic(tmp_path, *, op_tb_count: int = 10, inline_end: int = 46, op_flash: tuple[int, int] = (20, 50),
               flash: tuple[tuple[int, int], ...] = ((0, 0x1000),)) -> Path:
    """start (2 insns) | invoke begin (1) | op begin: mark (2) + kernel loop (3 x count, one load) | op end (1) |
    invoke end (1). The kernel's loop reads flash (``op_flash``: reads, bytes), nothing else does."""
    return _file(tmp_path, _tb(0, [0x10, 0x12], [2, 2]), _tb(1, [0x50], [2]), _tb(2, [0x100, 0x102], [2, 2]),
                 _tb(3, [0x200, 0x202, 0x204], [2, 2, 2],
                     [qemu_plugin.FLAG_LOAD, qemu_plugin.FLAG_LOAD | qemu_plugin.FLAG_LITERAL, qemu_plugin.FLAG_LOAD | qemu_plugin.FLAG_STACK]),
                 _tb(4, [0x60], [2]), _tb(5, [0x70], [2]),
                 _segment(-1, 0, [(0, 1, 1)]), _segment(qemu_plugin.INVOKE_BEGIN, 2, [(1, 1, 1)]),
                 _segment(qemu_plugin.OP_BEGIN, 3, [(2, 1, 1), (3, op_tb_count, 1)], op_flash),
                 _segment(qemu_plugin.OP_END, 35, [(4, 1, 1)]), _segment(qemu_plugin.INVOKE_END, 36, [(5, 10, 9)]),
                 _end(inline_end), flash=flash)


def _label(path: Path, **kw):
    raw = qemu_plugin.read_plugin_output(path)
    return labelling.label_profile(raw, path=path, functions=FUNCS, op_types=["CONV_2D"], mode="ops", target="t",
                         outputs=np.zeros((1, 1), np.int8), wall=0.0, **kw)


def test_synthetic_plugin_output_is_labelled(tmp_path):
    p = _label(_synthetic(tmp_path))
    (inv,) = p.invokes
    assert inv.instructions == 36 - 2 and inv.operators[0].instructions == 32 and inv.interpreter_instructions == 2
    assert inv.operators[0].marker_instructions == 2 and inv.operators[0].net_instructions == 30
    op = p.operator_segments(0)[0]
    assert op.address_counts == {0x100: 1, 0x102: 1, 0x200: 10, 0x202: 10, 0x204: 10}
    assert op.taken_counts == {0x102: 1, 0x204: 1} and op.op_type == "CONV_2D" and op.invoke == 0
    assert [s.kind for s in p.segments] == ["startup", "interpreter", "operator", "interpreter", "program"]
    assert p.function_counts([op]) == {"AscMarkOpBegin": 2, "kernel": 30}
    assert (op.flash_data_reads, op.flash_data_bytes) == (20, 50) and p.flash_ranges == ((0, 0x1000),)
    assert [s.flash_data_reads for s in p.segments] == [0, 0, 20, 0, 0]
    assert execution_profile.merge_flash_reads(p.invoke_segments(0)) == (20, 50)
    assert [p.instruction_flags[a] for a in (0x200, 0x202, 0x204, 0x10)] == [qemu_plugin.FLAG_LOAD, 3, 5, 0]
    # without flash ranges the counts are None, not 0: the cycle model then says they are not priced
    q = _label(_synthetic(tmp_path, op_flash=(0, 0), flash=()))
    assert all(s.flash_data_reads is None for s in q.segments) and q.flash_ranges == ()
    assert execution_profile.merge_flash_reads(q.invoke_segments(0)) == (None, None)


def test_inconsistent_flash_reads_are_refused(tmp_path):
    with pytest.raises(FirmwareError, match=r"segment 2 .*20 flash data reads although no flash range was given"):
        _label(_synthetic(tmp_path, flash=()))
    with pytest.raises(FirmwareError, match=r"segment 2 .*20 flash data reads of 200 bytes: every read is 1 to 8"):
        _label(_synthetic(tmp_path, op_flash=(20, 200)))
    # 10 executions of the loop's one instrumented load (not the literal nor the SP-based one): at most 320 reads
    _label(_synthetic(tmp_path, op_flash=(320, 320)))
    with pytest.raises(FirmwareError, match=r"321 flash data reads but 10 executions of instrumented load"):
        _label(_synthetic(tmp_path, op_flash=(321, 321)))


def test_other_format_versions_are_refused_by_name(tmp_path):
    path = _file(tmp_path, _end(0), version=1)
    with pytest.raises(FirmwareError, match=rf"format version 1; this reader .* reads only version "
                                            rf"{qemu_plugin.FORMAT_VERSION}.*delete"):
        qemu_plugin.read_plugin_output(path)


@pytest.mark.slow
def test_the_flash_ranges_are_the_images_flash_region(m4_program):
    """The loaded sections the linker put in FLASH (firmware/cortex_m/cortex_m_sections.ld: .text with
    .rodata, .ARM.exidx, .init_array) as one range; without the map file the read-only ones."""
    ranges = elf_symbols.flash_ranges(m4_program.path, map_file=m4_program.map_file)
    out = subprocess.run(["arm-none-eabi-objdump", "-h", str(m4_program.path)], capture_output=True, text=True).stdout
    sections = {p[1]: (int(p[3], 16), int(p[2], 16)) for p in (line.split() for line in out.splitlines())
                if len(p) >= 7 and p[0].isdigit()}
    text, data = sections[".text"], sections[".data"]
    in_flash = (".text", ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array")
    assert ranges == ((text[0], max(sections[n][0] + sections[n][1] for n in in_flash if n in sections)),)
    assert not ranges[0][0] <= data[0] < ranges[0][1]
    (lo, hi), = elf_symbols.flash_ranges(m4_program.path)
    assert lo == text[0] and text[0] + text[1] <= hi <= ranges[0][1]


def test_a_tb_left_early_is_refused(tmp_path):
    """TB counts say 9 x 3 + 2 instructions but QEMU's per-instruction counter says otherwise."""
    with pytest.raises(FirmwareError, match=r"segment 2 \(after AscMarkOpBegin\): 29 instructions by its TB counts "
                                            r"but 32 by QEMU's per-instruction counter"):
        _label(_synthetic(tmp_path, op_tb_count=9))


def test_wrong_operator_count_and_truncated_files_are_refused(tmp_path):
    path = _synthetic(tmp_path)
    with pytest.raises(FirmwareError, match="had 1 operator events, the model has 2 operators"):
        labelling.label_profile(qemu_plugin.read_plugin_output(path), path=path, functions=FUNCS, op_types=["CONV_2D", "ADD"],
                      mode="ops", target="t", outputs=np.zeros((1, 1), np.int8), wall=0.0)
    path.write_bytes(path.read_bytes()[:-24])
    with pytest.raises(FirmwareError, match="no end record: QEMU did not exit normally"):
        qemu_plugin.read_plugin_output(path)
    path.write_bytes(b"garbage" * 4)
    with pytest.raises(FirmwareError, match="not an instruction-count file"):
        qemu_plugin.read_plugin_output(path)


def test_host_targets_are_refused_by_name(tmp_path):
    prog = program.Program(get_target("host"), tmp_path / "asc_firmware", None, None, None, 0.0)
    with pytest.raises(FirmwareError, match="target host runs natively: instruction counts need a Cortex-M target"):
        instruction_counts.profile_inferences(prog, tmp_path, int8=np.zeros((1, 4), np.int8), model=b"", **QUIET)


@pytest.mark.slow
def test_a_plugin_qemu_refuses_is_named_with_the_fix(m4_program, inputs, tiny_export, tmp_path, monkeypatch):
    broken = tmp_path / "broken.so"
    broken.write_bytes(b"not a shared object")
    monkeypatch.setattr(instruction_counts, "build_plugin", lambda **_: broken)
    with pytest.raises(FirmwareError, match=r"qemu-system-arm could not load .*broken.so .*qemu_plugin_api.h"):
        instruction_counts.profile_inferences(m4_program, tmp_path / "run", int8=inputs[:1],
                                  model=(tiny_export / "model.tflite").read_bytes(), **QUIET)
