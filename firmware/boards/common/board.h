// The board interface the UART protocol program (board_main.cc) needs: one implementation per
// board folder (firmware/boards/<name>/board.c, whose shared part is board_common.h), nothing else
// is board-specific.
//
// Every wait a board does is bounded. A figure the board cannot measure is reported as such:
// BoardCyclesMeasured() is false when the DWT cycle counter did not advance at start (QEMU), and
// then no cycle figure is sent at all ("not measured"), never 0.
#ifndef ASC_BOARD_H_
#define ASC_BOARD_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// What BoardInit found, for the protocol's `profile%` answer.
typedef struct {
  const char* board;        // the board folder's name, e.g. "stm32f407"
  const char* chip;         // e.g. "STM32F405/F407"
  uint32_t clock_hz;        // the core clock actually running, read back from the clock tree
  uint32_t target_clock_hz; // the clock the board set out to run at (the MCU table's)
  const char* clock_note;   // how the clock was reached, or why the set-up fell back
  const char* uart;         // e.g. "USART2 PA2/PA3"
  uint32_t baud;
  int cycles_measured;      // DWT CYCCNT advanced at start
} BoardInfo;

// Clock, UART and cycle counter; call first in main.
void BoardInit(BoardInfo* info);

// Sends `n` bytes (blocking; a stalled transmitter gives up after a bounded wait).
void BoardUartWrite(const void* data, size_t n);

// The next received byte, or -1 after `max_polls` polls of an empty receiver (a bounded wait).
int BoardUartRead(uint32_t max_polls);

// DWT CYCCNT (meaningful only when BoardInfo.cycles_measured).
uint32_t BoardCycles(void);

#ifdef __cplusplus
}
#endif

#endif  // ASC_BOARD_H_
