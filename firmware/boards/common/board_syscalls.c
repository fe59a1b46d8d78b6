// The C library's system calls on a board without an operating system (linked with
// --specs=nosys.specs, which supplies the rest as stubs).
//
// _sbrk hands out the heap the linker script reserves (_heap_start.._heap_end) and nothing more:
// malloc fails instead of growing into the stack. _write sends stdout and stderr to the UART:
// TFLM's error messages (DebugLog) then reach the host, which reports any line that is not part of
// the protocol as the board's own words, instead of mistaking it for an answer.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"

extern uint8_t _heap_start[], _heap_end[];

void* _sbrk(ptrdiff_t increment) {
  static uint8_t* brk = _heap_start;
  if (increment > _heap_end - brk || brk + increment < _heap_start) {
    errno = ENOMEM;
    return (void*)-1;
  }
  uint8_t* previous = brk;
  brk += increment;
  return previous;
}

int _write(int fd, const char* data, int n) {
  if (fd != 1 && fd != 2) {
    errno = EBADF;
    return -1;
  }
  BoardUartWrite(data, (size_t)n);
  return n;
}
