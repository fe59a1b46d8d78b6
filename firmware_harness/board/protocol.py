"""The host's side of the board's UART protocol (``firmware/boards/common/board_main.cc``;
docs/board.md has the wire format and a worked exchange).

One :class:`BoardLink` per port, opened with pyserial's ``serial_for_url``: ``/dev/ttyACM0`` and
``socket://127.0.0.1:PORT`` (QEMU's TCP serial) go through the same code. Every wait is bounded:
a board that sends nothing for ``timeout`` seconds, a line that is not part of the protocol, a
block the board did not receive whole, an answer of the wrong length, an ``m-error`` or a reset
(``m-boot``) mid-run raises :class:`BoardError`, whose message names what was being done (the
clip) and the bytes sent and received, never a result.
"""
from __future__ import annotations

import dataclasses
import re
import time
import zlib

import serial as pyserial

from firmware_harness.builds.third_party import FirmwareError

PROTOCOL = "asc-board/1"
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 30.0  # seconds without a byte from the board before it is declared silent
MAX_LINE = 1 << 16  # longest line the board sends (a dumped input in hex is 2 x input bytes)
MAX_LINES = 4096  # lines of one answer: more is a runaway board
SYNC_RETRY = 2.0  # seconds of silence before name% is sent again while connecting
SYNC_DRAIN = 2.0  # seconds of silence that end the answers to the name% sent while connecting
_FIELDS = re.compile(r"\[([^\]]*)\]")


class BoardError(FirmwareError):
    """The board or the wire failed; the message names the clip and the byte counts."""


class _Silent(BoardError):
    """The board sent nothing for the allowed time."""


@dataclasses.dataclass(frozen=True)
class BoardProfile:
    """The board's answer to ``profile%``."""

    board: str
    chip: str
    clock_hz: int  # the clock actually running, as the board read it back
    target_clock_hz: int
    clock_note: str
    uart: str
    baud: int
    cycles_measured: bool
    input_bytes: int
    output_bytes: int
    windows: int
    pcm_max_bytes: int
    arena_bytes: int
    arena_used: int
    model_crc32: int
    stack_used: int | None = None  # deepest stack use since reset (painted stack), bytes


@dataclasses.dataclass(frozen=True)
class Inference:
    output: bytes  # int8 output, raw
    cycles: int | None  # None: not measured
    ops: tuple[tuple[str, int | None], ...] = ()  # (operator, cycles or None) of the last Invoke


@dataclasses.dataclass(frozen=True)
class Window:
    index: int
    input_crc32: int
    output: bytes
    cycles: int | None
    input: bytes | None = None  # with dump: the front end's int8 input, raw


@dataclasses.dataclass(frozen=True)
class ClipResult:
    windows: tuple[Window, ...]
    decision: int
    frontend_cycles: int | None
    invoke_cycles: int | None


def fields(line: str) -> list[str]:
    """The ``[...]`` fields of a board line."""
    return _FIELDS.findall(line)


def _cycles(text: str) -> int | None:
    return None if text == "not measured" else int(text)


class BoardLink:
    """A board at ``port`` (a pyserial URL or device), speaking :data:`PROTOCOL`."""

    def __init__(self, port: str, *, baud: int = DEFAULT_BAUD, timeout: float = DEFAULT_TIMEOUT, serial=None):
        if serial is None:
            try:
                serial = pyserial.serial_for_url(port, baudrate=baud, timeout=0.05, write_timeout=timeout)
            except (pyserial.SerialException, ValueError, OSError) as e:
                raise BoardError(f"--port {port}: cannot open it ({e}). Give the board's serial device "
                                 "(/dev/ttyACM0, COM3) or socket://HOST:PORT for QEMU's TCP serial") from None
        self.port, self.timeout, self._ser = port, timeout, serial
        self.context = "connecting"  # what is being done, for error messages (the clip)
        self.sent = self.received = 0  # bytes of the current command
        self.total_sent = self.total_received = 0  # bytes since the link was opened
        self._buffer = b""
        self._command = ""

    def close(self) -> None:
        self._ser.close()

    def __enter__(self) -> BoardLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, what: str) -> BoardError:
        return BoardError(f"board at {self.port}, {self.context}: {what} (command `{self._command}%`: "
                          f"{self.sent:,d} byte(s) sent, {self.received:,d} received)")

    def _write(self, data: bytes) -> None:
        try:
            self._ser.write(data)
            self._ser.flush()
        except Exception as e:  # pyserial's SerialTimeoutException, a closed socket
            raise self._fail(f"writing failed ({type(e).__name__}: {e})") from None
        self.sent += len(data)
        self.total_sent += len(data)

    def _line(self, *, silence: float | None = None, boot_ok: bool = False) -> str:
        """The next line, without CR LF; bounded by ``silence`` (default ``timeout``) seconds of silence.
        An ``m-boot`` line (the board reset) raises unless ``boot_ok``."""
        silence = self.timeout if silence is None else silence
        last = time.monotonic()
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise self._fail(f"a line longer than {MAX_LINE:,d} bytes, not part of the protocol: "
                                 f"{self._buffer[:80]!r}...")
            try:
                # what is waiting, or one byte within pyserial's short timeout: never a wait for a full buffer
                data = self._ser.read(max(1, min(self._ser.in_waiting, MAX_LINE)))
            except Exception as e:
                raise self._fail(f"reading failed ({type(e).__name__}: {e})") from None
            if data:
                self._buffer += data
                self.received += len(data)
                self.total_received += len(data)
                last = time.monotonic()
            elif time.monotonic() - last > silence:
                partial = f"; unfinished line {self._buffer[:80]!r}" if self._buffer else ""
                raise _Silent(str(self._fail(f"the board sent nothing for {silence:g} s{partial}")))
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        text = line.decode("latin-1")
        if not text.startswith("m-"):
            raise self._fail(f"the board sent {text[:120]!r}, which is not a protocol line (m-...): wrong baud rate, "
                             "another program on the port, or the board's own error message")
        if text.startswith("m-boot-") and not boot_ok:
            raise self._fail(f"the board reset ({text}) in the middle of the run")
        return text

    def command(self, cmd: str, *, payload: bytes | None = None) -> list[str]:
        """Send ``cmd%`` (then ``payload`` after the board's ``m-bin-ready``); the answer's lines
        up to ``m-ready``. An ``m-error`` answer raises :class:`BoardError` with the board's words."""
        self._command, self.sent, self.received = cmd, 0, 0
        self._write(cmd.encode() + b"%")
        lines, error = [], None
        while True:
            line = self._line()
            if line == "m-ready":
                break
            if line.startswith("m-bin-ready") and payload is not None:
                self._write(payload)
                payload = None
            elif line.startswith("m-error-"):
                error = error or line
            lines.append(line)
            if len(lines) > MAX_LINES:
                raise self._fail(f"more than {MAX_LINES} lines without m-ready")
        if error:
            raise self._fail(f"the board answered {error}")
        if payload is not None:
            raise self._fail("the board never asked for the block (no m-bin-ready)")
        return lines

    def sync(self) -> str:
        """Wait for the board and ask its name; returns it. A board that is still starting drops what
        it is sent before its UART is on, so ``name%`` is sent again after its ``m-boot`` banner and
        after every :data:`SYNC_RETRY` seconds of silence, until ``timeout`` has passed."""
        self._buffer = b""
        self._command, self.sent, self.received = "name", 0, 0
        deadline = time.monotonic() + self.timeout
        while True:
            self._write(b"name%")
            try:
                while True:
                    line = self._line(silence=min(SYNC_RETRY, self.timeout), boot_ok=True)
                    if line.startswith("m-boot-"):
                        break  # it has just started: ask again
                    if line.startswith("m-name-dut-"):
                        name = fields(line)[0]
                        if self._line() != "m-ready":
                            raise self._fail("no m-ready after the name")
                        self._drain_answers_to_name()
                        return name
            except _Silent as e:
                if time.monotonic() > deadline:
                    raise BoardError(f"{e.args[0]}; no answer to name% within {self.timeout:g} s: is the board "
                                     "flashed with `asc board build`'s image, powered, and on this port at this baud "
                                     "rate?") from None

    def _drain_answers_to_name(self) -> None:
        """Read the answers to any earlier ``name%`` the board did receive (it answers each), until it has
        been silent for :data:`SYNC_DRAIN` seconds; anything else is an error."""
        while True:
            try:
                line = self._line(silence=min(SYNC_DRAIN, self.timeout), boot_ok=True)
            except _Silent:
                return
            if not (line.startswith(("m-name-dut-", "m-boot-")) or line == "m-ready"):
                raise self._fail(f"while connecting the board sent {line!r}, not an answer to name%")

    def profile(self) -> BoardProfile:
        info = {}
        for line in self.command("profile"):
            if line.startswith("m-profile-"):
                if fields(line) != [PROTOCOL]:
                    raise self._fail(f"the board speaks {line}, this host {PROTOCOL}: rebuild and flash its image")
            elif line.startswith("m-info-"):
                key = line[len("m-info-"):line.index("-[")]
                info[key] = fields(line)[0]
        try:
            return BoardProfile(
                board=info["board"], chip=info["chip"], clock_hz=int(info["clock-hz"]),
                target_clock_hz=int(info["target-clock-hz"]), clock_note=info["clock-note"], uart=info["uart"],
                baud=int(info["baud"]), cycles_measured=info["cycles"] == "measured",
                input_bytes=int(info["input-bytes"]), output_bytes=int(info["output-bytes"]),
                windows=int(info["windows"]), pcm_max_bytes=int(info["pcm-max-bytes"]),
                arena_bytes=int(info["arena-bytes"]), arena_used=int(info["arena-used"]),
                model_crc32=int(info["model-crc32"], 16),
                stack_used=int(info["stack-used"]) if "stack-used" in info else None)
        except (KeyError, ValueError) as e:
            raise self._fail(f"incomplete profile answer ({type(e).__name__}: {e})") from None

    def _output(self, text: str, expected: int, what: str) -> bytes:
        try:
            out = bytes.fromhex(text)
        except ValueError:
            raise self._fail(f"{what}: not hexadecimal: {text[:80]!r}") from None
        if len(out) != expected:
            raise self._fail(f"{what}: {len(out)} output byte(s), the model has {expected}")
        return out

    def infer(self, x: bytes, *, output_bytes: int) -> Inference:
        """One int8 input (raw bytes) through ``bin`` and ``infer 1 0``."""
        self.command(f"bin {len(x)} {zlib.crc32(x):08x}", payload=x)
        lines = self.command("infer 1 0")
        done = [fields(l) for l in lines if l.startswith("m-infer-done-")]
        results = [fields(l)[0] for l in lines if l.startswith("m-results-")]
        if len(done) != 1 or len(results) != 1:
            raise self._fail("no m-infer-done or m-results line")
        ops = tuple((f[1], _cycles(f[2])) for f in (fields(l) for l in lines if l.startswith("m-op-")))
        return Inference(self._output(results[0], output_bytes, "m-results"), _cycles(done[0][1]), ops)

    def clip_from_pcm(self, pcm: bytes, *, bytes_per_sample: int, chunk_bytes: int, windows: int,
                      output_bytes: int, dump: bool = False) -> ClipResult:
        """A clip's PCM (raw little-endian samples) through the board's front end, in chunks of at
        most ``chunk_bytes``; every window's input CRC-32 and output (and, with ``dump``, its input)."""
        chunk = chunk_bytes - chunk_bytes % bytes_per_sample
        lines = self.command(f"pcm begin {bytes_per_sample} {int(dump)}")
        for at in range(0, len(pcm), chunk):
            part = pcm[at:at + chunk]
            self.context = self.context.split(" (PCM")[0] + f" (PCM bytes {at:,d}-{at + len(part):,d} of {len(pcm):,d})"
            lines += self.command(f"pcm {len(part)} {zlib.crc32(part):08x}", payload=part)
        self.context = self.context.split(" (PCM")[0]
        lines += self.command("pcm end")
        inputs = {int(f[0]): f[1] for f in (fields(l) for l in lines if l.startswith("m-input-"))}
        result = []
        for f in (fields(l) for l in lines if l.startswith("m-window-")):
            w = int(f[0])
            result.append(Window(w, int(f[1], 16), self._output(f[2], output_bytes, f"window {w}"), _cycles(f[3]),
                                 bytes.fromhex(inputs[w]) if w in inputs else None))
        clip = [fields(l) for l in lines if l.startswith("m-clip-")]
        if len(clip) != 1 or [w.index for w in result] != list(range(windows)) or int(clip[0][0]) != windows:
            raise self._fail(f"expected {windows} window(s) and one m-clip line, got windows "
                             f"{[w.index for w in result]} and {len(clip)} m-clip line(s)")
        return ClipResult(tuple(result), int(clip[0][1]), _cycles(clip[0][2]), _cycles(clip[0][3]))
