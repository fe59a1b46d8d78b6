// The firmware program: the exported model run by TFLM, on the host or on a Cortex-M under QEMU.
//
// It uses only what `asc export` wrote (model_data.h/.cc, model_settings.h, model_input.h,
// model_frontend.h/.cc) with TFLM and CMSIS-DSP. The tensor arena is the static kTensorArenaSize
// array a real firmware would have, so the linked image's flash and RAM are the real ones. File I/O goes through the C library
// (semihosting on Cortex-M: the paths are the host's).
//
//   asc_firmware --logmel FILE | --int8 FILE | --wav-list FILE   --clips N --out FILE
//                [--inputs-out FILE] [--logmel-out FILE] [--clip-out FILE] [--chunk SAMPLES]
//                [--dump FILE --dump-clip K] [--measure-arena] [--profile ops|invoke]
//                [--known-inputs FILE --known-outputs FILE]
//
//   --logmel FILE      N clips of float32 log-mel [kNumMels][clip frames] (dB), quantized here by
//                      the header's QuantizeLogMel; --int8 FILE: N ready int8 input tensors
//   --wav-list FILE    N WAV paths, one per line (mono 16/24-bit PCM at kFrontEndSampleRate): the
//                      PCM is streamed through the front end (model_frontend.h) in chunks of
//                      --chunk samples (default kHopLength), as a microphone driver would;
//                      --logmel-out FILE: the float log-mel it computed (N x kNumMels x clip frames)
//   --out FILE         the int8 outputs of every inference (kNumClasses each); --inputs-out FILE:
//                      the int8 inputs used. A windowed model (MODEL_WINDOWED in model_settings.h)
//                      runs kNumWindows inferences per clip from --logmel and --wav-list and
//                      writes each clip's ClipAccumulator to --clip-out FILE (kNumClasses int32
//                      sums, then the int32 decision); --int8 FILE always holds N single inferences
//   --dump FILE        also runs item K (--int8) or clip K's first window (--logmel) once with
//                      every tensor preserved and writes them all
//   --measure-arena    reports the arena this build needs using a large scratch arena
//   --known-inputs FILE --known-outputs FILE   (--wav-list, host builds only) the int8 inputs and outputs
//                      of the same inferences computed by this same program from --logmel: an inference
//                      whose input equals its known input is not invoked again (same binary, same input:
//                      same output), the known output is written instead; counted as invokes_skipped
//   --profile ops      calls the segment marks of asc_profile.h (for QEMU's instruction-count
//                      plugin, firmware_harness/icount.py) around every Invoke, every operator
//                      (TFLM's profiler interface) and every front-end call and frame;
//                      --profile invoke: the same without the operator marks (the interpreter
//                      then runs without a profiler, exactly as without --profile). Nothing else
//                      changes: the outputs are bit-identical with and without it
//
// A model without the log-mel input and front end (any int8 .tflite: `asc firmware MODEL.tflite`
// generates model_data.h/.cc and a model_settings.h that defines MODEL_NO_FRONTEND) builds
// without model_input.h and model_frontend.h/.cc and takes --int8 only.
//
// Prints key=value lines (arena_used_bytes, invoke_seconds, stack_used_bytes, ...); exit status
// 0 on success, 2 on bad arguments or I/O, 3 when TFLM cannot allocate or invoke.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_data.h"
#include "model_settings.h"
#ifndef MODEL_NO_FRONTEND
#include "model_frontend.h"
#include "model_input.h"
#endif
#include "asc_profile.h"
#include "tensorflow/lite/micro/memory_helpers.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
ModelOpResolver op_resolver;
#ifndef MODEL_NO_FRONTEND
float band_values[kNumFrames];  // one mel band of one inference (--logmel)
#ifdef MODEL_WINDOWED
constexpr int kClipLength = kClipFrames;
constexpr int kWindowsPerClip = kNumWindows;
const int* const kStarts = kWindowStarts;
int8_t column_ring[kNumMels * kNumFrames];  // the front end's last kNumFrames int8 columns
#else
constexpr int kClipLength = kNumFrames;
constexpr int kWindowsPerClip = 1;
constexpr int kWholeClip[1] = {0};
const int* const kStarts = kWholeClip;
#endif
static_assert(kClipLength == kFrontEndFrames, "the model's clip and the front end's clip differ");
FrontEnd frontend;              // the front end's state (--wav-list)
constexpr int kMaxChunkSamples = 2048;
alignas(4) uint8_t pcm_chunk[kMaxChunkSamples * 3];  // one microphone chunk, 16- or 24-bit
constexpr long kDefaultChunkSamples = kHopLength < kMaxChunkSamples ? kHopLength : kMaxChunkSamples;
#else  // no front end: --int8 inputs only, one inference each
constexpr int kWindowsPerClip = 1;
constexpr int kMaxChunkSamples = 1;
constexpr long kDefaultChunkSamples = 1;
#endif

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
  const char* wav_list = nullptr;
  const char* logmel_out = nullptr;
  const char* clip_out = nullptr;
  long chunk = kDefaultChunkSamples;
  const char* out = nullptr;
  const char* inputs_out = nullptr;
  const char* dump = nullptr;
  long clips = -1;
  long dump_clip = 0;
  bool measure_arena = false;
  int profile = 0;  // 0: no marks; kProfileInvoke; kProfileOps
  const char* known_inputs = nullptr;
  const char* known_outputs = nullptr;
};

constexpr int kProfileInvoke = 1;
constexpr int kProfileOps = 2;
bool profile_marks = false;  // --profile: call the asc_profile.h marks (tested once per mark site)
AscOpProfiler op_profiler;

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
    if (!strcmp(k, "--profile")) {
      a->profile = !strcmp(v, "ops") ? kProfileOps : (!strcmp(v, "invoke") ? kProfileInvoke : -1);
      if (a->profile < 0) return false;
      ++i;
      continue;
    }
    if (!strcmp(k, "--logmel")) a->logmel = v;
    else if (!strcmp(k, "--int8")) a->int8 = v;
    else if (!strcmp(k, "--wav-list")) a->wav_list = v;
    else if (!strcmp(k, "--logmel-out")) a->logmel_out = v;
    else if (!strcmp(k, "--clip-out")) a->clip_out = v;
    else if (!strcmp(k, "--chunk")) a->chunk = strtol(v, nullptr, 10);
    else if (!strcmp(k, "--out")) a->out = v;
    else if (!strcmp(k, "--inputs-out")) a->inputs_out = v;
    else if (!strcmp(k, "--dump")) a->dump = v;
    else if (!strcmp(k, "--clips")) a->clips = strtol(v, nullptr, 10);
    else if (!strcmp(k, "--dump-clip")) a->dump_clip = strtol(v, nullptr, 10);
    else if (!strcmp(k, "--known-inputs")) a->known_inputs = v;
    else if (!strcmp(k, "--known-outputs")) a->known_outputs = v;
    else return false;
    ++i;
  }
  // --measure-arena and --dump both use the scratch memory, so never together.
  const int sources = (a->logmel != nullptr) + (a->int8 != nullptr) + (a->wav_list != nullptr);
#ifdef MODEL_NO_FRONTEND
  if (a->int8 == nullptr) return false;  // no log-mel or PCM input without the front end
#endif
  return sources == 1 && a->clips >= 0 && a->out != nullptr && a->chunk >= 1 && a->chunk <= kMaxChunkSamples &&
         (a->logmel_out == nullptr || a->wav_list != nullptr) &&
         // --logmel-out, --dump and --measure-arena all use the scratch memory; --dump re-reads its input
         !(a->wav_list != nullptr && (a->dump != nullptr || a->measure_arena)) &&
         !(a->measure_arena && a->dump != nullptr) &&
#if defined(__arm__)
         a->known_inputs == nullptr && a->known_outputs == nullptr &&  // host harness speed-up only
#endif
         ((a->known_inputs == nullptr) == (a->known_outputs == nullptr)) &&
         (a->known_inputs == nullptr || a->wav_list != nullptr) &&
         a->dump_clip >= 0 && a->dump_clip < (a->clips > 0 ? a->clips : 1);
}

// Reads inference `index` of an --int8 file, or window `window` of clip `index` of a --logmel
// file (clips of kNumMels x kClipLength floats), into the interpreter's int8 input tensor.
bool ReadInput(FILE* f, const Args& a, long index, int window, int8_t* input) {
  if (a.int8 != nullptr) {
    if (fseek(f, index * static_cast<long>(kInputElements), SEEK_SET) != 0) return false;
    return fread(input, 1, kInputElements, f) == static_cast<size_t>(kInputElements);
  }
#ifdef MODEL_NO_FRONTEND
  return false;
#else
  for (int band = 0; band < kNumMels; ++band) {
    const long at = ((index * kNumMels + band) * static_cast<long>(kClipLength) + kStarts[window]) * 4;
    if (fseek(f, at, SEEK_SET) != 0) return false;
    if (fread(band_values, sizeof(float), kNumFrames, f) != static_cast<size_t>(kNumFrames)) return false;
    QuantizeLogMelBand(band_values, band, input);
  }
  return true;
#endif
}

// One inference: invoke, write its input and output, add it to the clip's accumulator.
struct Inference {
  tflite::MicroInterpreter* interpreter;
  FILE* out;
  FILE* inputs_out;
  double invoke_seconds;
  long count;
  bool ok;
  FILE* known_inputs;   // --known-inputs: inference i's input as --logmel computed it (or null)
  FILE* known_outputs;  // --known-outputs: its output from this same program
  int8_t* known_input;  // kInputElements
  int8_t known_output[kNumClasses];
  long skipped;         // inferences not invoked: input identical to the known input
#ifdef MODEL_WINDOWED
  ClipAccumulator acc;
#endif
};

// Whether inference r->count's input equals its known input; then known_output holds its output.
bool KnownInference(Inference* r, const int8_t* input) {
  if (r->known_inputs == nullptr) return false;
  const long at = r->count * static_cast<long>(kInputElements);
  if (fseek(r->known_inputs, at, SEEK_SET) != 0 ||
      fread(r->known_input, 1, kInputElements, r->known_inputs) != static_cast<size_t>(kInputElements) ||
      memcmp(r->known_input, input, kInputElements) != 0) {
    return false;
  }
  return fseek(r->known_outputs, r->count * static_cast<long>(kNumClasses), SEEK_SET) == 0 &&
         fread(r->known_output, 1, kNumClasses, r->known_outputs) == static_cast<size_t>(kNumClasses);
}

bool RunInference(Inference* r) {
  const int8_t* input = r->interpreter->input(0)->data.int8;
  if (r->inputs_out && fwrite(input, 1, kInputElements, r->inputs_out) != static_cast<size_t>(kInputElements)) {
    return r->ok = false;
  }
  const int8_t* output = r->known_output;
  if (KnownInference(r, input)) {
    r->skipped += 1;
  } else {
    const clock_t t0 = clock();
    if ((profile_marks ? AscProfiledInvoke(r->interpreter) : r->interpreter->Invoke()) != kTfLiteOk) return r->ok = false;
    r->invoke_seconds += static_cast<double>(clock() - t0) / CLOCKS_PER_SEC;
    output = r->interpreter->output(0)->data.int8;
  }
  if (fwrite(output, 1, kNumClasses, r->out) != static_cast<size_t>(kNumClasses)) return r->ok = false;
#ifdef MODEL_WINDOWED
  ClipAccumulatorAdd(&r->acc, output);
#endif
  r->count += 1;
  return true;
}

#ifndef MODEL_NO_FRONTEND
// The front end's frame callback: run every window whose last frame this is.
struct StreamState {
  Inference* inference;
  int next_window;
};

void OnFrame(int frame, void* context) {
  if (profile_marks) AscMarkFrame();
  StreamState* st = static_cast<StreamState*>(context);
  while (st->next_window < kWindowsPerClip && frame == kStarts[st->next_window] + kNumFrames - 1) {
#ifdef MODEL_WINDOWED
    FrontEndCopyWindow(column_ring, kStarts[st->next_window], st->inference->interpreter->input(0)->data.int8);
#endif
    if (!RunInference(st->inference)) break;
    st->next_window += 1;
  }
  if (profile_marks) AscMarkFrontEndBegin();  // back into the front end
}

// --- WAV input (--wav-list) ---------------------------------------------------------------------

uint32_t Le32(const uint8_t* b) { return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24); }
uint16_t Le16(const uint8_t* b) { return static_cast<uint16_t>(b[0] | (b[1] << 8)); }

// Opens a RIFF/WAVE file and leaves `f` at the start of its PCM data. Mono integer PCM (16 or
// 24 bit) at kFrontEndSampleRate only: the front end does not mix or resample.
const char* OpenWav(FILE* f, int* bytes_per_sample, uint32_t* data_bytes) {
  uint8_t h[12];
  if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) return "not a RIFF/WAVE file";
  bool have_fmt = false;
  for (;;) {
    uint8_t c[8];
    if (fread(c, 1, 8, f) != 8) return "no data chunk";
    const uint32_t size = Le32(c + 4);
    if (!memcmp(c, "fmt ", 4)) {
      uint8_t fmt[40] = {0};
      const uint32_t n = size < sizeof(fmt) ? size : sizeof(fmt);
      if (size < 16 || fread(fmt, 1, n, f) != n || fseek(f, static_cast<long>(size - n + (size & 1)), SEEK_CUR) != 0) {
        return "bad fmt chunk";
      }
      uint16_t tag = Le16(fmt);
      if (tag == 0xFFFE && size >= 26) tag = Le16(fmt + 24);  // WAVE_FORMAT_EXTENSIBLE: sub-format
      const uint16_t channels = Le16(fmt + 2), bits = Le16(fmt + 14);
      if (tag != 1) return "not integer PCM";
      if (channels != 1) return "not mono";
      if (Le32(fmt + 4) != static_cast<uint32_t>(kFrontEndSampleRate)) return "sample rate differs from kFrontEndSampleRate";
      if (bits != 16 && bits != 24) return "not 16- or 24-bit";
      *bytes_per_sample = bits / 8;
      have_fmt = true;
    } else if (!memcmp(c, "data", 4)) {
      if (!have_fmt) return "data before fmt";
      *data_bytes = size;
      return nullptr;
    } else if (fseek(f, static_cast<long>(size + (size & 1)), SEEK_CUR) != 0) {
      return "truncated chunk";
    }
  }
}

// Streams one WAV file through the front end, running each window's inference as soon as its last
// frame is written; `logmel` may be null. `seconds` gets the front end's time (reads and
// inferences excluded).
bool RunFrontEnd(const char* path, long chunk, Inference* inference, float* logmel, double* seconds) {
#ifdef MODEL_WINDOWED
  int8_t* columns = column_ring;
#else
  int8_t* columns = inference->interpreter->input(0)->data.int8;  // the input tensor is the column store
#endif
  StreamState stream = {inference, 0};
  const double invoke_before = inference->invoke_seconds;
  FILE* f = fopen(path, "rb");
  if (f == nullptr) return Fail(2, "cannot open", path), false;
  int bytes = 0;
  uint32_t data_bytes = 0;
  const char* err = OpenWav(f, &bytes, &data_bytes);
  if (err != nullptr) {
    fclose(f);
    fprintf(stdout, "status=error\nerror=%s: %s\n", path, err);
    return false;
  }
  uint32_t left = data_bytes / bytes;
  const clock_t t0 = clock();
  clock_t io = 0;
  if (profile_marks) AscMarkClipBegin();
  bool ok = FrontEndBegin(&frontend, OnFrame, &stream);
  if (profile_marks) AscMarkFrontEndEnd();
  while (ok && left > 0) {
    const uint32_t n = left < static_cast<uint32_t>(chunk) ? left : static_cast<uint32_t>(chunk);
    const clock_t r0 = clock();
    const size_t got = fread(pcm_chunk, bytes, n, f);
    io += clock() - r0;
    if (got == 0) break;  // a truncated file: the front end zero-pads, as training does
    if (profile_marks) AscMarkFrontEndBegin();
    if (bytes == 2) {
      FrontEndPushPcm16(&frontend, reinterpret_cast<const int16_t*>(pcm_chunk), static_cast<int>(got), columns, logmel);
    } else {
      FrontEndPushPcm24(&frontend, pcm_chunk, static_cast<int>(got), columns, logmel);
    }
    if (profile_marks) AscMarkFrontEndEnd();
    left -= static_cast<uint32_t>(got);
  }
  if (ok) {
    if (profile_marks) AscMarkFrontEndBegin();
    FrontEndFinish(&frontend, columns, logmel);
    if (profile_marks) AscMarkFrontEndEnd();
  }
  *seconds += static_cast<double>(clock() - t0 - io) / CLOCKS_PER_SEC - (inference->invoke_seconds - invoke_before);
  fclose(f);
  if (!ok) return Fail(3, "FrontEndBegin failed for", path), false;
  if (!inference->ok) return Fail(3, "Invoke or a write failed for", path), false;
  return (FrontEndClipComplete(&frontend) && stream.next_window == kWindowsPerClip) ||
         (Fail(3, "clip incomplete for", path), false);
}
#endif  // MODEL_NO_FRONTEND

bool ReadLine(FILE* f, char* line, size_t size) {
  if (fgets(line, static_cast<int>(size), f) == nullptr) return false;
  line[strcspn(line, "\r\n")] = 0;
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
    return Fail(2, "usage:", "--logmel FILE | --int8 FILE | --wav-list FILE --clips N --out FILE "
                "[--inputs-out FILE] [--logmel-out FILE] [--clip-out FILE] [--chunk SAMPLES] [--dump FILE --dump-clip K] "
                "[--measure-arena] [--profile ops|invoke] [--known-inputs FILE --known-outputs FILE]");
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
  profile_marks = a.profile != 0;
  tflite::MicroInterpreter interpreter(model, op_resolver, arena, arena_size, nullptr,
                                       a.profile == kProfileOps ? &op_profiler : nullptr);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    fprintf(stdout, "kTensorArenaSize=%d\n", kTensorArenaSize);
    return Fail(3, "AllocateTensors failed: the tensor arena is too small for this build", nullptr);
  }
  fprintf(stdout, "kTensorArenaSize=%d\narena_used_bytes=%lu\n", kTensorArenaSize,
          static_cast<unsigned long>(interpreter.arena_used_bytes()));

  const char* in_path = a.logmel ? a.logmel : (a.int8 ? a.int8 : a.wav_list);
  FILE* in = fopen(in_path, "rb");
  FILE* out = fopen(a.out, "wb");
  FILE* inputs_out = a.inputs_out ? fopen(a.inputs_out, "wb") : nullptr;
  FILE* logmel_out = a.logmel_out ? fopen(a.logmel_out, "wb") : nullptr;
  FILE* clip_out = a.clip_out ? fopen(a.clip_out, "wb") : nullptr;
  if (in == nullptr) return Fail(2, "cannot open", in_path);
  if (a.clip_out && clip_out == nullptr) return Fail(2, "cannot open", a.clip_out);
  if (out == nullptr) return Fail(2, "cannot open", a.out);
  if (a.inputs_out && inputs_out == nullptr) return Fail(2, "cannot open", a.inputs_out);
  if (a.logmel_out && logmel_out == nullptr) return Fail(2, "cannot open", a.logmel_out);
#ifndef MODEL_NO_FRONTEND
  // the float log-mel is for checking only: diagnostic memory, outside the image on Cortex-M
  constexpr long kClipElements = static_cast<long>(kNumMels) * kFrontEndFrames;
  float* logmel = a.logmel_out ? reinterpret_cast<float*>(ScratchBuffer(kClipElements * sizeof(float))) : nullptr;
  if (a.logmel_out && logmel == nullptr) return Fail(3, "no scratch memory for --logmel-out", nullptr);
#endif
  int8_t* input = interpreter.input(0)->data.int8;
  Inference inference = {&interpreter, out, inputs_out, 0.0, 0, true, nullptr, nullptr, nullptr, {}, 0};
  if (a.known_inputs != nullptr) {
    inference.known_inputs = fopen(a.known_inputs, "rb");
    inference.known_outputs = fopen(a.known_outputs, "rb");
    inference.known_input = static_cast<int8_t*>(malloc(kInputElements));
    if (inference.known_inputs == nullptr) return Fail(2, "cannot open", a.known_inputs);
    if (inference.known_outputs == nullptr) return Fail(2, "cannot open", a.known_outputs);
    if (inference.known_input == nullptr) return Fail(3, "no memory for --known-inputs", nullptr);
  }
  double frontend_seconds = 0.0;
  char wav_path[512];
  // --int8: one inference per item; --logmel and --wav-list: kWindowsPerClip per clip
  for (long clip = 0; clip < a.clips; ++clip) {
#ifdef MODEL_WINDOWED
    ClipAccumulatorReset(&inference.acc);
#endif
    if (a.wav_list != nullptr) {
#ifndef MODEL_NO_FRONTEND
      if (!ReadLine(in, wav_path, sizeof(wav_path))) return Fail(2, "short read from", in_path);
      if (!RunFrontEnd(wav_path, a.chunk, &inference, logmel, &frontend_seconds)) return 2;
      if (logmel_out && fwrite(logmel, sizeof(float), kClipElements, logmel_out) != static_cast<size_t>(kClipElements)) {
        return Fail(2, "write failed:", a.logmel_out);
      }
#endif
    } else {
      const int windows = a.int8 != nullptr ? 1 : kWindowsPerClip;
      for (int w = 0; w < windows; ++w) {
        if (!ReadInput(in, a, clip, w, input)) return Fail(2, "short read from", in_path);
        if (!RunInference(&inference)) return Fail(3, "Invoke or a write failed", nullptr);
      }
    }
#ifdef MODEL_WINDOWED
    if (clip_out && a.int8 == nullptr) {
      const int32_t decision = ClipAccumulatorDecision(&inference.acc);
      if (fwrite(inference.acc.sum, 4, kNumClasses, clip_out) != static_cast<size_t>(kNumClasses) ||
          fwrite(&decision, 4, 1, clip_out) != 1) {
        return Fail(2, "write failed:", a.clip_out);
      }
    }
#endif
  }
  if (fclose(out) != 0 || (inputs_out && fclose(inputs_out) != 0) || (logmel_out && fclose(logmel_out) != 0) ||
      (clip_out && fclose(clip_out) != 0)) {
    return Fail(2, "close failed:", a.out);
  }
  fprintf(stdout, "clips=%ld\ninferences=%ld\nwindows_per_clip=%d\ninvoke_seconds=%.6f\ninvokes_skipped=%ld\n", a.clips,
          inference.count, kWindowsPerClip, inference.invoke_seconds, inference.skipped);
  if (a.wav_list != nullptr) {
#ifndef MODEL_NO_FRONTEND
    fprintf(stdout, "chunk_samples=%ld\nfrontend_seconds=%.6f\nfrontend_frames=%ld\nfrontend_state_bytes=%lu\n"
            "pcm_chunk_bytes=%lu\n", a.chunk, frontend_seconds, a.clips * kFrontEndFrames,
            static_cast<unsigned long>(sizeof(FrontEnd)), static_cast<unsigned long>(sizeof(pcm_chunk)));
#endif
  }
#if defined(__arm__)
  fprintf(stdout, "stack_used_bytes=%lu\n", static_cast<unsigned long>(StackUsedBytes()));
#endif

  if (a.dump != nullptr && a.clips > 0) {
    uint8_t* scratch = ScratchBuffer(kScratchBytes);
    if (scratch == nullptr) return Fail(3, "no scratch memory for --dump", nullptr);
    tflite::MicroInterpreter preserving(model, op_resolver, scratch, kScratchBytes, nullptr, nullptr,
                                        /*preserve_all_tensors=*/true);
    if (preserving.AllocateTensors() != kTfLiteOk) return Fail(3, "AllocateTensors failed (--dump)", nullptr);
    if (!ReadInput(in, a, a.dump_clip, 0, preserving.input(0)->data.int8)) return Fail(2, "short read (--dump)", nullptr);
    if (preserving.Invoke() != kTfLiteOk) return Fail(3, "Invoke failed (--dump)", nullptr);
    if (!DumpTensors(preserving, model, a.dump)) return Fail(2, "write failed:", a.dump);
    fprintf(stdout, "dumped_clip=%ld\n", a.dump_clip);
  }
  fclose(in);
  fprintf(stdout, "status=ok\n");
  return 0;
}
