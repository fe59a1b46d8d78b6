// Segment marks for exact instruction counting under QEMU (firmware_harness/icount.py).
//
// Each AscMark* function is a separate, never-inlined function whose only job is to be executed:
// the QEMU plugin (firmware/qemu_plugin/icount_plugin.c) is given their addresses (read from the
// ELF with arm-none-eabi-nm) and starts a new segment, of that mark's kind, every time one of
// them runs. They do nothing else, so calling them cannot change any result. The program
// (main.cc, the only file that includes this one, so the definitions live in its object and
// the footprint counts them as the program's) calls them only in its --profile mode.
//
// `noipa`: the compiler must not inline, clone, merge (identical code folding) or reason about
// these functions, so each keeps its own address and every call really executes it. Each returns
// a different constant, which also keeps their bodies distinct (two instructions on Thumb-2:
// `movs r0, #k; bx lr`).
#ifndef ASC_PROFILE_H_
#define ASC_PROFILE_H_

#include <stdint.h>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/compatibility.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

#define ASC_MARK __attribute__((noipa, used))

// The kinds, in the order icount.py passes their addresses to the plugin (MARK_SYMBOLS there).
extern "C" {
// an Invoke starts: the interpreter's work before its first operator
ASC_MARK uint32_t AscMarkInvokeBegin(void) { return 0; }
// an Invoke returned: the program's own work follows
ASC_MARK uint32_t AscMarkInvokeEnd(void) { return 1; }
// an operator's kernel starts (TFLM's profiler BeginEvent)
ASC_MARK uint32_t AscMarkOpBegin(void) { return 2; }
// back in the interpreter, after an operator (EndEvent)
ASC_MARK uint32_t AscMarkOpEnd(void) { return 3; }
// the front end runs (FrontEndBegin/PushPcm/Finish called, or resumed after a frame callback)
ASC_MARK uint32_t AscMarkFrontEndBegin(void) { return 4; }
// the front end returned to the program
ASC_MARK uint32_t AscMarkFrontEndEnd(void) { return 5; }
// the front end emitted a frame: its frame callback starts
ASC_MARK uint32_t AscMarkFrame(void) { return 6; }
// a clip starts: FrontEndBegin runs (front end)
ASC_MARK uint32_t AscMarkClipBegin(void) { return 7; }
}

// TFLM's per-operator events: MicroInterpreterGraph::InvokeSubgraph wraps every kernel's invoke
// (and the ResetTempAllocations after it) in a ScopedMicroProfiler unless
// TF_LITE_STRIP_ERROR_STRINGS is defined, which our flags do not define.
class AscOpProfiler : public tflite::MicroProfilerInterface {
 public:
  // The handle TFLM hands back to EndEvent; never used.
  __attribute__((noinline)) uint32_t BeginEvent(const char*) override { return AscMarkOpBegin(); }
  __attribute__((noinline)) void EndEvent(uint32_t) override { AscMarkOpEnd(); }

 private:
  TF_LITE_REMOVE_VIRTUAL_DELETE
};

// interpreter->Invoke() between AscMarkInvokeBegin and AscMarkInvokeEnd.
__attribute__((noinline)) TfLiteStatus AscProfiledInvoke(tflite::MicroInterpreter* interpreter) {
  AscMarkInvokeBegin();
  const TfLiteStatus status = interpreter->Invoke();
  AscMarkInvokeEnd();
  return status;
}

#endif  // ASC_PROFILE_H_
