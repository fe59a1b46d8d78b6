/* PLACEHOLDER start-up for a board (replace with your vendor's, or pass -DASC_BOARD_STARTUP=...).
 * qemu/startup.S's reset handler enables the FPU and calls AscCStart: copy .data from flash,
 * zero .bss, run the C++ constructors, then main. Clocks, caches and the microphone driver are
 * your board's: set them up here or in main. Linked with --specs=nosys.specs -nostartfiles
 * (newlib without an operating system: printf goes nowhere until you retarget _write). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_start__[], __data_end__[], __data_load__[], __bss_start__[], __bss_end__[];
extern void __libc_init_array(void);
extern int main(int argc, char** argv);

void _init(void) {}
void _fini(void) {}
void* __dso_handle = 0;

void AscCStart(void) {
  const uint32_t* src = __data_load__;
  for (uint32_t* p = __data_start__; p < __data_end__; ++p) *p = *src++;
  for (uint32_t* p = __bss_start__; p < __bss_end__; ++p) *p = 0;
  __libc_init_array();
  static char* no_arguments[] = {0};
  exit(main(0, no_arguments));
}
