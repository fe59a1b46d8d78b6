"""A board image under QEMU with its UART on a TCP port of 127.0.0.1: what ``asc board run
--port qemu`` and the tests drive through ``socket://`` exactly as a serial port."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from firmware_harness.board.boards import Board
from firmware_harness.builds.third_party import FirmwareError

START_SECONDS = 20.0  # bound on QEMU's start (listening on its port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(board: Board, elf: Path, port: int) -> list[str]:
    """netduinoplus2's USART1 is the first -serial, USART2 (the board's UART) the second."""
    return ["qemu-system-arm", *board.qemu, "-nographic", "-monitor", "none", "-serial", "null",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off", "-kernel", str(elf)]


@contextlib.contextmanager
def qemu_board(board: Board, elf: Path) -> Iterator[str]:
    """Start QEMU on ``elf``; yield the ``socket://`` URL of the board's UART; kill QEMU on exit."""
    if not board.qemu:
        raise FirmwareError(f"--port qemu: QEMU 7.2 has no machine for the {board.name} board (compiled, not run "
                            "here); give the serial port of a real board")
    port = _free_port()
    proc = subprocess.Popen(qemu_command(board, elf, port), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                raise FirmwareError(f"qemu-system-arm exited with status {proc.returncode}: "
                                    f"{proc.stdout.read().decode(errors='replace')[-1000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise FirmwareError(f"qemu-system-arm did not listen on 127.0.0.1:{port} within "
                                        f"{START_SECONDS:g} s") from None
                time.sleep(0.1)
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        try:
            proc.wait(timeout=10)
        finally:
            proc.stdout.close()
