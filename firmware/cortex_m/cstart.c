/* C start-up for the QEMU boards, in place of newlib's rdimon crt0 (linked with -nostartfiles).
 *
 * rdimon's crt0 takes the stack and heap from the debugger's SYS_HEAPINFO answer, which QEMU
 * computes from its own idea of the board's RAM: on mps2-an386 the stack lands in PSRAM outside
 * the image, on mps3-an547 in the ITCM with no heap at all. Here the stack stays where the vector
 * table put it (the top of the linker script's RAM, as on a chip) and the heap grows from the
 * end of .bss (librdimon's _sbrk stops it at the stack). .data needs no copy: QEMU loads it
 * straight into RAM.
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __bss_start__[], __bss_end__[];
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(int argc, char** argv);

/* What crti.o/crtbegin.o would provide: empty init/fini hooks and the DSO handle. */
void _init(void) {}
void _fini(void) {}
void* __dso_handle = 0;

static char command_line[256];
static char* arguments[32];

static int Semihost(int operation, void* parameter) {
  register int r0 __asm__("r0") = operation;
  register void* r1 __asm__("r1") = parameter;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* Splits the semihosted command line (SYS_GET_CMDLINE) at spaces into argv. */
static int ReadArguments(void) {
  struct { char* buffer; int length; } block = {command_line, sizeof command_line - 1};
  int argc = 0;
  if (Semihost(0x15, &block) != 0) return 0;
  command_line[block.length] = 0;
  for (char* c = command_line; *c && argc < 31;) {
    while (*c == ' ') *c++ = 0;
    if (*c) arguments[argc++] = c;
    while (*c && *c != ' ') ++c;
  }
  arguments[argc] = 0;
  return argc;
}

void AscCStart(void) {
  for (uint32_t* p = __bss_start__; p < __bss_end__; ++p) *p = 0;
  initialise_monitor_handles();
  __libc_init_array();
  const int argc = ReadArguments();
  exit(main(argc, arguments));
}
