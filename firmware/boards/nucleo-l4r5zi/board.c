// NUCLEO-L4R5ZI board support (STM32L4R5ZI; the MLPerf Tiny reference board). ST's CMSIS device
// files (startup_stm32l4r5xx.s, system_stm32l4xx.c, from the pinned cmsis-device-l4 archive) do
// the vector table, .data/.bss and the FPU enable (SystemInit); this file does the clock, LPUART1
// and the cycle counter. QEMU 7.2 has no STM32L4 machine: this board is compiled and linked in the
// tests, never run here.
//
// Clock (RM0432 rev 9, 6.2.9 "Clock source frequency versus voltage scaling"; 3.3.3 "Read access
// latency", table "Number of wait states according to CPU clock (HCLK) frequency"): MSI 4 MHz
// (the reset clock) / PLLM 1 * PLLN 60 / PLLR 2 = 120 MHz (DS12023: the maximum, range 1 boost
// mode, PWR_CR5 R1MODE = 0), 5 flash wait states at 100-120 MHz, ART accelerator on. RM0432 6.2.9
// asks for the AHB prescaler at /2 while the system clock switches to above 80 MHz in boost mode,
// then /1 after at least 1 us. Every ready flag is polled a bounded number of times; when one never
// comes, the chip stays on MSI 4 MHz and BoardInfo says so.
//
// LPUART1 (FIFO-capable on the L4+: its status bits are TXE_TXFNF and RXNE_RXFNE; the FIFO stays off)
// on PG7 (TX) / PG8 (RX), alternate function 8 (DS12023 "Alternate function" table), is
// the ST-LINK/V2-1 virtual COM port of the NUCLEO-144 board (UM2179, "Virtual COM port"); port G
// is powered from VDDIO2, which PWR_CR2 IOSV declares valid (RM0432 5.1.3).
#include "stm32l4xx.h"

#define ASC_UART_STATUS LPUART1->ISR  // LPUART1 for the shared byte loops (board_common.h)
#define ASC_UART_TDR LPUART1->TDR
#define ASC_UART_RDR LPUART1->RDR
#define ASC_UART_BITS USART_ISR_TXE_TXFNF, USART_ISR_RXNE_RXFNE, USART_ISR_ORE
#define ASC_UART_CLEAR_OVERRUN() (LPUART1->ICR = USART_ICR_ORECF)
#define ASC_TARGET_HZ 120000000u
#include "board_common.h"

static const char* SetUpClock(void) {
  RCC->APB1ENR1 |= RCC_APB1ENR1_PWREN;
  (void)RCC->APB1ENR1;
  PWR->CR5 &= ~PWR_CR5_R1MODE;  // range 1 boost mode: up to 120 MHz
  if (!WaitSet(&PWR->SR2, PWR_SR2_VOSF, 0)) return "the regulator did not settle: running on the reset clock (MSI)";
  FLASH->ACR = (FLASH->ACR & ~FLASH_ACR_LATENCY) | FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN |
               FLASH_ACR_DCEN;
  if (!WaitSet(&FLASH->ACR, FLASH_ACR_LATENCY, FLASH_ACR_LATENCY_5WS)) {
    return "the flash did not take 5 wait states: running on the reset clock (MSI)";
  }
  RCC->PLLCFGR = RCC_PLLCFGR_PLLSRC_MSI | (0u << RCC_PLLCFGR_PLLM_Pos) | (60u << RCC_PLLCFGR_PLLN_Pos) |
                 (0u << RCC_PLLCFGR_PLLR_Pos) | RCC_PLLCFGR_PLLREN;
  RCC->CR |= RCC_CR_PLLON;
  if (!WaitSet(&RCC->CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return "the PLL did not lock: running on the reset clock (MSI)";
  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_HPRE) | RCC_CFGR_HPRE_DIV2;
  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_SW) | RCC_CFGR_SW_PLL;
  if (!WaitSet(&RCC->CFGR, RCC_CFGR_SWS, RCC_CFGR_SWS_PLL)) {
    return "SYSCLK did not switch to the PLL: running on the clock the status bits name";
  }
  for (volatile uint32_t i = 0; i < 200; ++i) {  // > 1 us at 60 MHz HCLK
  }
  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_HPRE) | RCC_CFGR_HPRE_DIV1;
  return "MSI 4 MHz, PLL 120 MHz (range 1 boost), 5 flash wait states, ART accelerator on";
}

void BoardInit(BoardInfo* info) {
  const char* note = SetUpClock();
  SystemCoreClockUpdate();  // from the clock-tree registers: the clock actually running
  RCC->AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
  RCC->APB1ENR2 |= RCC_APB1ENR2_LPUART1EN;
  (void)RCC->APB1ENR2;
  PWR->CR2 |= PWR_CR2_IOSV;
  GPIOG->MODER = (GPIOG->MODER & ~(GPIO_MODER_MODE7 | GPIO_MODER_MODE8)) |
                 (2u << GPIO_MODER_MODE7_Pos) | (2u << GPIO_MODER_MODE8_Pos);
  GPIOG->AFR[0] = (GPIOG->AFR[0] & ~(0xFu << 28)) | (8u << 28);
  GPIOG->AFR[1] = (GPIOG->AFR[1] & ~0xFu) | 8u;
  LPUART1->CR1 = 0;
  // LPUART1 clocked by PCLK1 (= HCLK: APB1 prescaler 1): BRR = 256 * fck / baud (RM0432 52.4.6)
  LPUART1->BRR = (uint32_t)((256ull * SystemCoreClock + ASC_BAUD / 2) / ASC_BAUD);
  LPUART1->CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
  BoardInitInfo(info, "nucleo-l4r5zi", "STM32L4R5ZI", "LPUART1 PG7 TX / PG8 RX (ST-LINK virtual COM port)", note);
}
