// The Cortex-M4 DWT cycle counter, shared by the boards. Include after the CMSIS device header.
//
// Enabled and then checked: a counter that does not advance over a busy loop of a few hundred
// cycles (QEMU 7.2 implements no DWT: CYCCNT reads 0) is reported as not measured.
#ifndef ASC_BOARD_DWT_H_
#define ASC_BOARD_DWT_H_

static inline int BoardDwtStart(void) {
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;  // trace enable: powers the DWT
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
  const uint32_t before = DWT->CYCCNT;
  for (volatile int i = 0; i < 100; ++i) {
  }
  return DWT->CYCCNT != before;
}

#endif  // ASC_BOARD_DWT_H_
