// STM32F405/F407 board support (STM32F4-Discovery: STM32F407VG, 8 MHz HSE crystal; QEMU's
// netduinoplus2 models the STM32F405). ST's CMSIS device files (startup_stm32f407xx.s,
// system_stm32f4xx.c, from the pinned cmsis-device-f4 archive) do the vector table, .data/.bss
// and the FPU enable (SystemInit); this file does the clock, USART2 and the cycle counter.
//
// Clock (RM0090 rev 19, 6.3 "RCC registers"; 3.5.1 Table 10 "Number of wait states according to
// CPU clock (HCLK) frequency"): HSE 8 MHz / PLLM 8 * PLLN 336 / PLLP 2 = 168 MHz (DS8626: the
// STM32F407's maximum), PLLQ 7 = 48 MHz (USB), voltage scale 1 (PWR_CR VOS), 5 flash wait states
// at 150-168 MHz and 2.7-3.6 V, ART accelerator (prefetch, I- and D-cache) on, APB1 = HCLK/4 =
// 42 MHz (its maximum), APB2 = HCLK/2 = 84 MHz. Every ready flag is polled a bounded number of
// times; when one never comes (QEMU 7.2 models no RCC: RCC->CR reads 0) the chip stays on its
// reset clock, HSI 16 MHz, and BoardInfo says so.
//
// USART2 on PA2 (TX) / PA3 (RX), alternate function 7 (DS8626 Table 9 "Alternate function
// mapping"), 8N1, no flow control: on QEMU netduinoplus2 it is the second -serial.
#include "stm32f4xx.h"

#define ASC_UART_STATUS USART2->SR  // USART2 for the shared byte loops (board_common.h)
#define ASC_UART_TDR USART2->DR
#define ASC_UART_RDR USART2->DR
#define ASC_UART_BITS USART_SR_TXE, USART_SR_RXNE, USART_SR_ORE
#define ASC_UART_CLEAR_OVERRUN() (void)USART2->DR  // RM0090 30.6.1: reading SR then DR clears ORE
#define ASC_TARGET_HZ 168000000u
#include "board_common.h"

static const char* SetUpClock(void) {
  RCC->CR |= RCC_CR_HSEON;
  if (!WaitSet(&RCC->CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) {
    return "HSE did not become ready: running on the reset clock (HSI)";
  }
  RCC->APB1ENR |= RCC_APB1ENR_PWREN;
  PWR->CR |= PWR_CR_VOS;  // voltage scale 1: needed above 144 MHz
  RCC->PLLCFGR = (8u << RCC_PLLCFGR_PLLM_Pos) | (336u << RCC_PLLCFGR_PLLN_Pos) | (0u << RCC_PLLCFGR_PLLP_Pos) |
                 RCC_PLLCFGR_PLLSRC_HSE | (7u << RCC_PLLCFGR_PLLQ_Pos);
  RCC->CR |= RCC_CR_PLLON;
  if (!WaitSet(&RCC->CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
    return "the PLL did not lock: running on the reset clock (HSI)";
  }
  FLASH->ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
  if (!WaitSet(&FLASH->ACR, FLASH_ACR_LATENCY, FLASH_ACR_LATENCY_5WS)) {
    return "the flash did not take 5 wait states: running on the reset clock (HSI)";
  }
  RCC->CFGR = (RCC->CFGR & ~(RCC_CFGR_HPRE | RCC_CFGR_PPRE1 | RCC_CFGR_PPRE2)) | RCC_CFGR_HPRE_DIV1 |
              RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2;
  RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_SW) | RCC_CFGR_SW_PLL;
  if (!WaitSet(&RCC->CFGR, RCC_CFGR_SWS, RCC_CFGR_SWS_PLL)) {
    return "SYSCLK did not switch to the PLL: running on the clock the status bits name";
  }
  return "HSE 8 MHz, PLL 168 MHz, 5 flash wait states, ART accelerator on";
}

static uint32_t Apb1Hz(void) {
  static const uint8_t kShift[8] = {0, 0, 0, 0, 1, 2, 3, 4};  // PPRE1: 0xx = /1, 100 = /2 ... 111 = /16
  return SystemCoreClock >> kShift[(RCC->CFGR & RCC_CFGR_PPRE1) >> RCC_CFGR_PPRE1_Pos];
}

void BoardInit(BoardInfo* info) {
  const char* note = SetUpClock();
  SystemCoreClockUpdate();  // from the clock-tree registers: the clock actually running
  RCC->AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
  RCC->APB1ENR |= RCC_APB1ENR_USART2EN;
  (void)RCC->APB1ENR;  // RM0090 6.3.10: a read after enabling a peripheral clock
  GPIOA->MODER = (GPIOA->MODER & ~(GPIO_MODER_MODER2 | GPIO_MODER_MODER3)) |
                 (2u << GPIO_MODER_MODER2_Pos) | (2u << GPIO_MODER_MODER3_Pos);
  GPIOA->AFR[0] = (GPIOA->AFR[0] & ~(0xFFu << 8)) | (7u << 8) | (7u << 12);
  GPIOA->PUPDR = (GPIOA->PUPDR & ~GPIO_PUPDR_PUPD3) | (1u << GPIO_PUPDR_PUPD3_Pos);  // RX idles high
  USART2->CR1 = 0;
  USART2->BRR = (Apb1Hz() + ASC_BAUD / 2) / ASC_BAUD;  // 16x oversampling: mantissa.fraction = fck / baud
  USART2->CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
  BoardInitInfo(info, "stm32f407", "STM32F405/F407", "USART2 PA2 TX / PA3 RX", note);
}
