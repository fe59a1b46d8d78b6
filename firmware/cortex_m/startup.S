/* Minimal Cortex-M startup for QEMU's MPS2/MPS3 boards with semihosting.
 *
 * The vector table holds the initial stack pointer (the top of the linker script's RAM) and the
 * reset handler; every other exception ends the run through semihosting (SYS_EXIT,
 * "run-time error") so that a fault is a non-zero exit status, not a hang. The reset handler
 * enables the FPU (and, on Armv8.1-M, MVE: the same CPACR bits) before any floating-point
 * instruction can run, then enters AscCStart (cstart.c).
 */
    .syntax unified
    .thumb

    .section .vectors, "a"
    .align 2
    .globl __vectors
__vectors:
    .word __stack_top
    .word Reset_Handler
    .rept 14
    .word Fault_Handler
    .endr

    .text
    .thumb_func
    .globl Reset_Handler
Reset_Handler:
    ldr r0, =0xE000ED88        /* CPACR */
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)   /* CP10, CP11: full access */
    str r1, [r0]
    dsb
    isb
    b AscCStart

    .thumb_func
    .globl Fault_Handler
Fault_Handler:
    movs r0, #0x18             /* SYS_EXIT */
    ldr r1, =0x20023           /* ADP_Stopped_RunTimeErrorUnknown */
    bkpt 0xab
    b .
