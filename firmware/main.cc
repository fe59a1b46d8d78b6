// The firmware program: the exported model run by TFLM, on the host or on a Cortex-M under QEMU.
//
// It uses only what `asc export` wrote (model_data.h/.cc, model_settings.h, model_input.h) and
// TFLM. The tensor arena is the static kTensorArenaSize array a real firmware would have, so the
// linked image's flash and RAM are the real ones. File I/O goes through the C library
// (semihosting on Cortex-M: the paths are the host's).
//
//   asc_firmware --logmel FILE | --int8 FILE   --clips N --out FILE [--inputs-out FILE]
//                [--dump FILE --dump-clip K] [--measure-arena]
//
//   --logmel FILE      N clips of float32 log-mel [kNumMels][kNumFrames] (dB), quantized here by
//                      the header's QuantizeLogMel; --int8 FILE: N ready int8 input tensors
//   --out FILE         N x kNumClasses int8 outputs; --inputs-out FILE: the N int8 inputs used
//   --dump FILE        also runs clip K once with every tensor preserved and writes them all
//   --measure-arena    reports the arena this build needs using a large scratch arena
//
// Prints key=value lines (arena_used_bytes, invoke_seconds, stack_used_bytes, ...); exit status
// 0 on success, 2 on bad arguments or I/O, 3 when TFLM cannot allocate or invoke.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_data.h"
#include "model_input.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/memory_helpers.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
ModelOpResolver op_resolver;
float band_values[kNumFrames];  // one mel band of one clip: the only float buffer

#if defined(__arm__)
// Board memory the linker script leaves outside the image (QEMU's PSRAM/DDR): used only by the
// diagnostic modes (--dump, --measure-arena), never by the firmware's own inference.
extern "C" uint8_t __scratch_start[];
extern "C" uint8_t __scratch_end[];
extern "C" uint8_t __stack_top[];  // the initial SP (cortex_m/startup.S, the linker script)
uint8_t* ScratchBuffer(size_t bytes) {
  return bytes <= static_cast<size_t>(__scratch_end - __scratch_start) ? __scratch_start : nullptr;
}
constexpr size_t kScratchBytes = 16u << 20;
#else
uint8_t* ScratchBuffer(size_t bytes) { return static_cast<uint8_t*>(malloc(bytes)); }
constexpr size_t kScratchBytes = 256u << 20;
#endif

#if defined(__arm__)
// Stack high-water mark: paint the stack below main's frame, then find the deepest overwrite.
// Volatile, and SP read with asm: the compiler must not treat the paint as dead stores.
constexpr size_t kStackPaintBytes = 48u << 10;
constexpr size_t kStackGuardBytes = 256;  // PaintStack's own frame
constexpr uint32_t kPaint = 0xA5A5A5A5u;
volatile uint32_t* paint_low = nullptr;
volatile uint32_t* paint_high = nullptr;

__attribute__((noinline)) void PaintStack() {
  uintptr_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  paint_high = reinterpret_cast<volatile uint32_t*>(sp - kStackGuardBytes);
  paint_low = paint_high - kStackPaintBytes / 4;
  for (volatile uint32_t* p = paint_low; p < paint_high; ++p) *p = kPaint;
}

// Deepest stack use of the whole program so far (crt0, main's frame, everything below).
size_t StackUsedBytes() {
  volatile uint32_t* p = paint_low;
  while (p < paint_high && *p == kPaint) ++p;
  return reinterpret_cast<uintptr_t>(__stack_top) - reinterpret_cast<uintptr_t>(p);
}
#endif

struct Args {
  const char* logmel = nullptr;
  const char* int8 = nullptr;
  const char* out = nullptr;
  const char* inputs_out = nullptr;
  const char* dump = nullptr;
  long clips = -1;
  long dump_clip = 0;
  bool measure_arena = false;
};

int Fail(int status, const char* what, const char* detail) {
  fprintf(stdout, "status=error\nerror=%s %s\n", what, detail ? detail : "");
  fflush(stdout);
  return status;
}

bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const char* k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!strcmp(k, "--measure-arena")) { a->measure_arena = true; continue; }
    if (v == nullptr) return false;
    if (!strcmp(k, "--logmel")) a->logmel = v;
    else if (!strcmp(k, "--int8")) a->int8 = v;
    else if (!strcmp(k, "--out")) a->out = v;
    else if (!strcmp(k, "--inputs-out")) a->inputs_out = v;
    else if (!strcmp(k, "--dump")) a->dump = v;
    else if (!strcmp(k, "--clips")) a->clips = strtol(v, nullptr, 10);
    else if (!strcmp(k, "--dump-clip")) a->dump_clip = strtol(v, nullptr, 10);
    else return false;
    ++i;
  }
  // --measure-arena and --dump both use the scratch memory, so never together.
  return (a->logmel != nullptr) != (a->int8 != nullptr) && a->clips >= 0 && a->out != nullptr &&
         !(a->measure_arena && a->dump != nullptr) &&
         a->dump_clip >= 0 && a->dump_clip < (a->clips > 0 ? a->clips : 1);
}

// Reads clip `clip` of the input file into the interpreter's int8 input tensor.
bool ReadInput(FILE* f, const Args& a, long clip, int8_t* input) {
  if (a.int8 != nullptr) {
    if (fseek(f, clip * static_cast<long>(kInputElements), SEEK_SET) != 0) return false;
    return fread(input, 1, kInputElements, f) == static_cast<size_t>(kInputElements);
  }
  if (fseek(f, clip * static_cast<long>(kInputElements * sizeof(float)), SEEK_SET) != 0) return false;
  for (int band = 0; band < kNumMels; ++band) {
    if (fread(band_values, sizeof(float), kNumFrames, f) != static_cast<size_t>(kNumFrames)) return false;
    QuantizeLogMelBand(band_values, band, input);
  }
  return true;
}

// Dump format: "ASCDUMP1", uint32 tensor count, then per tensor: uint32 index, int32 TfLiteType,
// uint32 byte count, the bytes (all little-endian, the tensor's memory as TFLM holds it).
bool DumpTensors(tflite::MicroInterpreter& interpreter, const tflite::Model* model, const char* path) {
  FILE* f = fopen(path, "wb");
  if (f == nullptr) return false;
  const uint32_t count = model->subgraphs()->Get(0)->tensors()->size();
  bool ok = fwrite("ASCDUMP1", 1, 8, f) == 8 && fwrite(&count, 4, 1, f) == 1;
  for (uint32_t i = 0; ok && i < count; ++i) {
    TfLiteEvalTensor* t = interpreter.GetTensor(static_cast<int>(i));
    size_t type_size = 0;
    uint32_t nbytes = 0;
    if (t != nullptr && t->data.data != nullptr && tflite::TfLiteTypeSizeOf(t->type, &type_size) == kTfLiteOk) {
      size_t n = type_size;
      for (int d = 0; d < t->dims->size; ++d) n *= static_cast<size_t>(t->dims->data[d]);
      nbytes = static_cast<uint32_t>(n);
    }
    const int32_t type = t != nullptr ? static_cast<int32_t>(t->type) : -1;
    ok = fwrite(&i, 4, 1, f) == 1 && fwrite(&type, 4, 1, f) == 1 && fwrite(&nbytes, 4, 1, f) == 1 &&
         (nbytes == 0 || fwrite(t->data.data, 1, nbytes, f) == nbytes);
  }
  return fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__arm__)
  PaintStack();
#endif
  Args a;
  if (!ParseArgs(argc, argv, &a)) {
    return Fail(2, "usage:", "--logmel FILE | --int8 FILE --clips N --out FILE [--inputs-out FILE] "
                "[--dump FILE --dump-clip K] [--measure-arena]");
  }
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (RegisterModelOps(op_resolver) != kTfLiteOk) return Fail(3, "RegisterModelOps failed", nullptr);

  uint8_t* arena = tensor_arena;
  size_t arena_size = kTensorArenaSize;
  if (a.measure_arena) {
    arena = ScratchBuffer(kScratchBytes);
    arena_size = kScratchBytes;
    if (arena == nullptr) return Fail(3, "no scratch memory for --measure-arena", nullptr);
  }
  tflite::MicroInterpreter interpreter(model, op_resolver, arena, arena_size);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    fprintf(stdout, "kTensorArenaSize=%d\n", kTensorArenaSize);
    return Fail(3, "AllocateTensors failed: the tensor arena is too small for this build", nullptr);
  }
  fprintf(stdout, "kTensorArenaSize=%d\narena_used_bytes=%lu\n", kTensorArenaSize,
          static_cast<unsigned long>(interpreter.arena_used_bytes()));

  FILE* in = fopen(a.logmel ? a.logmel : a.int8, "rb");
  FILE* out = fopen(a.out, "wb");
  FILE* inputs_out = a.inputs_out ? fopen(a.inputs_out, "wb") : nullptr;
  if (in == nullptr) return Fail(2, "cannot open", a.logmel ? a.logmel : a.int8);
  if (out == nullptr) return Fail(2, "cannot open", a.out);
  if (a.inputs_out && inputs_out == nullptr) return Fail(2, "cannot open", a.inputs_out);
  int8_t* input = interpreter.input(0)->data.int8;
  const int8_t* output = interpreter.output(0)->data.int8;
  double invoke_seconds = 0.0;
  for (long clip = 0; clip < a.clips; ++clip) {
    if (!ReadInput(in, a, clip, input)) return Fail(2, "short read from", a.logmel ? a.logmel : a.int8);
    if (inputs_out && fwrite(input, 1, kInputElements, inputs_out) != static_cast<size_t>(kInputElements)) {
      return Fail(2, "write failed:", a.inputs_out);
    }
    const clock_t t0 = clock();
    if (interpreter.Invoke() != kTfLiteOk) return Fail(3, "Invoke failed", nullptr);
    invoke_seconds += static_cast<double>(clock() - t0) / CLOCKS_PER_SEC;
    if (fwrite(output, 1, kNumClasses, out) != static_cast<size_t>(kNumClasses)) {
      return Fail(2, "write failed:", a.out);
    }
  }
  if (fclose(out) != 0 || (inputs_out && fclose(inputs_out) != 0)) return Fail(2, "close failed:", a.out);
  fprintf(stdout, "clips=%ld\ninvoke_seconds=%.6f\n", a.clips, invoke_seconds);
#if defined(__arm__)
  fprintf(stdout, "stack_used_bytes=%lu\n", static_cast<unsigned long>(StackUsedBytes()));
#endif

  if (a.dump != nullptr && a.clips > 0) {
    uint8_t* scratch = ScratchBuffer(kScratchBytes);
    if (scratch == nullptr) return Fail(3, "no scratch memory for --dump", nullptr);
    tflite::MicroInterpreter preserving(model, op_resolver, scratch, kScratchBytes, nullptr, nullptr,
                                        /*preserve_all_tensors=*/true);
    if (preserving.AllocateTensors() != kTfLiteOk) return Fail(3, "AllocateTensors failed (--dump)", nullptr);
    if (!ReadInput(in, a, a.dump_clip, preserving.input(0)->data.int8)) return Fail(2, "short read (--dump)", nullptr);
    if (preserving.Invoke() != kTfLiteOk) return Fail(3, "Invoke failed (--dump)", nullptr);
    if (!DumpTensors(preserving, model, a.dump)) return Fail(2, "write failed:", a.dump);
    fprintf(stdout, "dumped_clip=%ld\n", a.dump_clip);
  }
  fclose(in);
  fprintf(stdout, "status=ok\n");
  return 0;
}
