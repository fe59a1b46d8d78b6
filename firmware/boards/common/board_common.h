// The part of board.c every board shares: bounded register waits, the UART byte loops, the cycle
// counter, BoardInfo and the hard-fault report. Each board's board.c includes it once, after its
// CMSIS device header and after defining:
//
//   ASC_UART_STATUS, ASC_UART_TDR, ASC_UART_RDR   its UART's status and data registers (each at
//                    its own width, as the CMSIS header declares it)
//   ASC_UART_BITS    the status bits: transmitter empty, byte received, overrun
//   ASC_UART_CLEAR_OVERRUN()   what clears the overrun flag
//   ASC_TARGET_HZ    the core clock the board sets out to run at (the MCU table's)
//
// and then defines only what is its own: the clock set-up, the UART's pins, clock and baud
// divider, and BoardInit, which ends with BoardInitInfo.
#ifndef ASC_BOARD_COMMON_H_
#define ASC_BOARD_COMMON_H_

#include "board.h"
#include "board_dwt.h"

#define ASC_BAUD 115200u
#define ASC_READY_POLLS 500000u  // about 30 ms at 16 MHz (HAL's HSE start-up timeout is 100 ms)
#define ASC_TX_POLLS 1000000u

// 1 when (*reg & mask) == want within ASC_READY_POLLS reads, else 0.
static int WaitSet(volatile uint32_t* reg, uint32_t mask, uint32_t want) {
  for (uint32_t i = 0; i < ASC_READY_POLLS; ++i) {
    if ((*reg & mask) == want) return 1;
  }
  return 0;
}

// The end of BoardInit: what the board found, the clock read back from the clock tree.
static void BoardInitInfo(BoardInfo* info, const char* board, const char* chip, const char* uart,
                          const char* clock_note) {
  info->board = board;
  info->chip = chip;
  info->clock_hz = SystemCoreClock;
  info->target_clock_hz = ASC_TARGET_HZ;
  info->clock_note = clock_note;
  info->uart = uart;
  info->baud = ASC_BAUD;
  info->cycles_measured = BoardDwtStart();
}

static const uint32_t kUartBits[3] = {ASC_UART_BITS};  // transmitter empty, byte received, overrun

void BoardUartWrite(const void* data, size_t n) {
  const uint8_t* p = (const uint8_t*)data;
  for (size_t k = 0; k < n; ++k) {
    for (uint32_t i = 0; i < ASC_TX_POLLS && !(ASC_UART_STATUS & kUartBits[0]); ++i) {
    }
    ASC_UART_TDR = p[k];
  }
}

int BoardUartRead(uint32_t max_polls) {
  for (uint32_t i = 0; i < max_polls; ++i) {
    const uint32_t status = ASC_UART_STATUS;
    if (status & kUartBits[2]) {
      ASC_UART_CLEAR_OVERRUN();
      return -2;  // a byte was lost (receiver overrun)
    }
    if (status & kUartBits[1]) return (int)(ASC_UART_RDR & 0xFFu);
  }
  return -1;
}

uint32_t BoardCycles(void) { return DWT->CYCCNT; }

void HardFault_Handler(void) {
  static const char kMsg[] = "\r\nm-error-[hard fault]\r\n";
  BoardUartWrite(kMsg, sizeof(kMsg) - 1);
  for (;;) {
  }
}

#endif  // ASC_BOARD_COMMON_H_
