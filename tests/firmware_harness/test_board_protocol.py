"""The host's side of the board protocol against a fake board (a socket server thread on 127.0.0.1):
garbage, truncated answers, a lost block, a silent board and a reset give clear errors naming the
clip and the byte counts, within a bounded time; well-formed answers parse."""
from __future__ import annotations

import socket
import threading
import time
import zlib

import pytest

from firmware_harness.board.protocol import BoardError, BoardLink

TIMEOUT = 1.0  # seconds of silence the link allows in these tests
BOUND = 10.0  # every failure must come well within this


class FakeBoard:
    """Answers each command (the text before ``%``) with ``script[command]``, a callable of the
    connection and the command; binary payloads announced by ``bin N ...`` are read first when
    ``read_payload`` says so."""

    def __init__(self, script):
        self.script = script
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(BOUND)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.settimeout(BOUND)
        with conn:
            buf = b""
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    self.received += data
                    while b"%" in buf:
                        cmd, buf = buf.split(b"%", 1)
                        answer = self.script.get(cmd.decode().split(" ")[0], lambda c, cmd: None)
                        answer(conn, cmd.decode())
            except OSError:
                return

    def close(self):
        self.server.close()
        self.thread.join(BOUND)


def send(*lines: str):
    return lambda conn, cmd: conn.sendall("".join(f"{line}\r\n" for line in lines).encode())


NAME = send("m-name-dut-[asc-tinyml fake]", "m-ready")


@pytest.fixture
def board(request):
    boards = []

    def make(script):
        b = FakeBoard(script)
        boards.append(b)
        return b

    yield make
    for b in boards:
        b.close()


def _timed(fn):
    t0 = time.monotonic()
    with pytest.raises(BoardError) as e:
        fn()
    assert time.monotonic() - t0 < BOUND
    return str(e.value)


def test_a_silent_board_is_reported_within_the_timeout(board):
    fake = board({})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        msg = _timed(link.sync)
    assert "no answer to name%" in msg and "sent nothing" in msg


def test_garbage_is_not_taken_for_an_answer(board):
    fake = board({"name": send("hello from another program")})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        msg = _timed(link.sync)
    assert "'hello from another program'" in msg and "not a protocol line" in msg


def ack_block(conn, cmd):
    """What board_main.cc does for ``bin N CRC``: ask for the block, read it, check its CRC-32."""
    conn.sendall(b"m-bin-ready-[input]\r\n")
    n = int(cmd.split()[1])
    got = b""
    while len(got) < n:
        got += conn.recv(n - len(got))
    ok = zlib.crc32(got) == int(cmd.split()[2], 16)
    conn.sendall((f"m-bin-ok-[{n}]" if ok else "m-error-[crc]").encode() + b"\r\nm-ready\r\n")


def test_a_truncated_output_names_the_clip_and_the_lengths(board):
    fake = board({"name": NAME, "bin": ack_block,
                  "infer": send("m-infer-done-[1]-[not measured]", "m-results-[0102]", "m-ready")})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        link.context = "clip audio/x.wav, window 3"
        msg = _timed(lambda: link.infer(bytes(16), output_bytes=10))
    assert "clip audio/x.wav, window 3" in msg and "2 output byte(s), the model has 10" in msg
    assert "infer 1 0%" in msg


def test_a_block_the_board_did_not_receive_whole_is_an_error_with_the_byte_counts(board):
    # what board_main.cc answers when bytes of a block stop coming
    fake = board({"name": NAME, "bin": send("m-bin-ready-[input]", "m-error-[input: timeout after byte 1000 of 1792]",
                                             "m-ready")})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        link.context = "clip audio/y.wav, window 0, from log-mel"
        msg = _timed(lambda: link.infer(bytes(1792), output_bytes=10))
    sent = len(f"bin 1792 {zlib.crc32(bytes(1792)):08x}%") + 1792
    assert "clip audio/y.wav" in msg and "timeout after byte 1000 of 1792" in msg and f"{sent:,d} byte(s) sent" in msg


def test_an_answer_cut_off_mid_line_is_reported_with_what_arrived(board):
    fake = board({"name": NAME, "results": lambda conn, cmd: conn.sendall(b"m-results-[01")})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        link.context = "clip audio/z.wav"
        msg = _timed(lambda: link.command("results"))
    assert "sent nothing for 1 s" in msg and "unfinished line b'm-results-[01'" in msg and "13 received" in msg


def test_a_reset_in_the_middle_of_a_run_is_an_error(board):
    fake = board({"name": NAME, "results": send("m-boot-[asc-board/1 fake]", "m-ready")})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        link.context = "clip audio/r.wav"
        msg = _timed(lambda: link.command("results"))
    assert "the board reset" in msg and "clip audio/r.wav" in msg


def test_a_board_still_starting_is_asked_again_after_its_banner(board):
    answered = []

    def name_after_boot(conn, cmd):
        if not answered:  # the first name% was lost while the board started: it sends its banner
            answered.append(1)
            conn.sendall(b"m-boot-[asc-board/1 fake]\r\nm-ready\r\n")
        else:
            NAME(conn, cmd)

    fake = board({"name": name_after_boot})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        assert link.sync() == "asc-tinyml fake"
    assert fake.received == b"name%name%"


def test_a_block_goes_with_its_length_and_crc32_after_the_board_asks(board):
    payload = bytes(range(200))
    fake = board({"name": NAME, "bin": ack_block})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        lines = link.command(f"bin {len(payload)} {zlib.crc32(payload):08x}", payload=payload)
    assert lines == ["m-bin-ready-[input]", "m-bin-ok-[200]"]  # the fake board checked the CRC-32 of what came


def test_the_profile_answer_parses_and_a_missing_cycle_counter_is_none(board):
    profile = send("m-profile-[asc-board/1]", "m-info-board-[fake]", "m-info-chip-[X]", "m-info-clock-hz-[16000000]",
                   "m-info-target-clock-hz-[168000000]", "m-info-clock-note-[HSE did not start]",
                   "m-info-uart-[USART2]", "m-info-baud-[115200]", "m-info-cycles-[not measured]",
                   "m-info-input-bytes-[1792]", "m-info-output-bytes-[10]", "m-info-windows-[21]",
                   "m-info-pcm-max-bytes-[8160]", "m-info-arena-bytes-[60656]", "m-info-arena-used-[55000]",
                   "m-info-model-crc32-[0badf00d]", "m-ready")
    fake = board({"name": NAME, "profile": profile})
    with BoardLink(fake.url, timeout=TIMEOUT) as link:
        link.sync()
        p = link.profile()
    assert (p.clock_hz, p.cycles_measured, p.windows, p.model_crc32) == (16_000_000, False, 21, 0x0BADF00D)


def test_the_boards_regions_are_the_chips(tmp_path):
    from firmware_harness.board.boards import get_board

    f4 = {r.name: (r.origin, r.length) for r in get_board("stm32f407").regions()}
    l4 = {r.name: (r.origin, r.length) for r in get_board("nucleo-l4r5zi").regions()}
    # RM0090 / RM0432 memory maps: what the linker scripts must enforce (no QEMU-sized 192 KiB or 4 MiB)
    assert f4["FLASH"] == (0x08000000, 1024 * 1024) and f4["RAM"] == (0x20000000, 128 * 1024)
    assert l4["FLASH"] == (0x08000000, 2048 * 1024) and l4["RAM"] == (0x20000000, 640 * 1024)


def test_flash_without_a_probe_tool_says_so_and_prints_the_command(tmp_path, monkeypatch, capsys):
    from asc_cli.main import main

    image = tmp_path / "image"
    image.mkdir()
    (image / "asc_board.elf").write_bytes(b"\x7fELF")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither pyocd nor openocd
    status = main(["board", "flash", str(tmp_path / "export"), "--board", "stm32f407", "--image", str(image)])
    err = capsys.readouterr().err
    assert status == 1 and "no flashing tool installed" in err
    assert f"pyocd flash -t stm32f407vg {image / 'asc_board.hex'}" in err
    assert f"openocd -f board/stm32f4discovery.cfg -c 'program {image / 'asc_board.elf'} verify reset exit'" in err


def test_every_answer_to_a_repeated_name_is_read_before_the_next_command(board):
    """The first name% was slow, not lost: the host asked again after SYNC_RETRY seconds and the board
    answers both. The second answer must not be taken for the answer to the next command."""
    from firmware_harness.board.protocol import SYNC_RETRY

    answers = []

    def slow_first_name(conn, cmd):
        if not answers:
            time.sleep(SYNC_RETRY + 0.5)
        answers.append(cmd)
        NAME(conn, cmd)

    fake = board({"name": slow_first_name, "results": send("m-results-[00]", "m-ready")})
    with BoardLink(fake.url, timeout=3 * SYNC_RETRY) as link:
        link.sync()
        assert link.command("results") == ["m-results-[00]"]
    assert answers == ["name", "name"]
