// The board program: the exported model and front end, driven over the board's UART.
//
// The command set is MLPerf Tiny / EEMBC's runner's where it fits (`name%`, `profile%`,
// `db load N%`, `db HEX%`, `infer N W%`, `results%`), so their runner can drive this image too,
// plus what on-target validation needs: a binary block of one int8 input with its length and CRC-32
// (`bin N CRC%`), and PCM chunks through the exported front end (`pcm begin B D%`, `pcm N CRC%`,
// `pcm end%`), so that a clip goes from PCM to class on the board. docs/board.md has the wire
// format and a worked exchange; firmware_harness/board/protocol.py is the host's side.
//
// Every answer line is `m-...` ending in CR LF, and every command's answer ends with `m-ready`.
// At reset the board sends `m-boot-[...]` and `m-ready`. Cycle figures come from the DWT cycle
// counter; where it does not advance (QEMU) they are sent as "not measured", never as a number.
// Uses only what `asc export` wrote plus TFLM and CMSIS-DSP, and board.h.
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "board_wire.h"
#include "model_data.h"
#include "model_settings.h"
#ifndef MODEL_NO_FRONTEND
#include "model_frontend.h"
#include "model_input.h"
#endif
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"

#define ASC_PROTOCOL "asc-board/1"

namespace {

using namespace asc_wire;  // NOLINT: the wire's helpers are this program's vocabulary

constexpr uint32_t kBytePolls = 20000000u;  // a block's byte that does not come within this: timeout
constexpr int kCommandMax = 1024;
constexpr int kMaxOps = 128;

alignas(16) uint8_t tensor_arena[kTensorArenaSize];
ModelOpResolver op_resolver;
BoardInfo board;
char command[kCommandMax + 1];

#ifndef MODEL_NO_FRONTEND
#ifdef MODEL_WINDOWED
constexpr int kWindowsPerClip = kNumWindows;
const int* const kStarts = kWindowStarts;
int8_t column_ring[kNumMels * kNumFrames];  // the front end's last kNumFrames int8 columns
#else
constexpr int kWindowsPerClip = 1;
constexpr int kWholeClip[1] = {0};
const int* const kStarts = kWholeClip;
#endif
FrontEnd frontend;
constexpr int kPcmBufferBytes = 8160;  // one PCM chunk: 4,080 16-bit or 2,720 24-bit samples
alignas(4) uint8_t pcm_buffer[kPcmBufferBytes];
#else
constexpr int kWindowsPerClip = 1;
constexpr int kPcmBufferBytes = 0;
#endif

// --- stack high-water mark: painted at start, the deepest overwrite reported by profile% --------

extern "C" uint8_t _heap_end[];  // the linker script: the stack may grow down to here
extern "C" uint8_t _estack[];    // the top of RAM: the initial stack pointer
constexpr uint32_t kPaint = 0xA5A5A5A5u;

// Volatile, and SP read with asm: the compiler must not treat the paint as dead stores.
__attribute__((noinline)) void PaintStack() {
  uintptr_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (volatile uint32_t* p = reinterpret_cast<uint32_t*>(_heap_end); reinterpret_cast<uintptr_t>(p) < sp - 256; ++p) {
    *p = kPaint;
  }
}

uint32_t StackUsedBytes() {
  const volatile uint32_t* p = reinterpret_cast<uint32_t*>(_heap_end);
  while (reinterpret_cast<uintptr_t>(p) < reinterpret_cast<uintptr_t>(_estack) && *p == kPaint) ++p;
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(_estack) - reinterpret_cast<uintptr_t>(p));
}

// --- output that needs the board's state ------------------------------------------------------

void Cycles(uint32_t cycles) {
  if (board.cycles_measured) {
    PutUnsigned(cycles);
  } else {
    Put("not measured");
  }
}

void Error(const char* what) { Line("error", what); }

// Reads `n` raw bytes into `dst` and checks their CRC-32; answers m-bin-ok or an error naming the
// byte count. False on any failure (the caller then treats the destination as not loaded).
bool ReadBlock(uint8_t* dst, uint32_t n, uint32_t crc, const char* what) {
  Line("bin-ready", what);
  for (uint32_t i = 0; i < n; ++i) {
    const int c = BoardUartRead(kBytePolls);
    if (c < 0) {
      Put("m-error-[");
      Put(what);
      Put(c == -2 ? ": a byte was lost (receiver overrun) at byte " : ": timeout after byte ");
      PutUnsigned(i);
      Put(" of ");
      PutUnsigned(n);
      Put("]");
      EndLine();
      return false;
    }
    dst[i] = static_cast<uint8_t>(c);
  }
  const uint32_t got = Crc32(0, dst, static_cast<int>(n));
  if (got != crc) {
    Put("m-error-[");
    Put(what);
    Put(": crc32 ");
    PutHex32(got);
    Put(" of the ");
    PutUnsigned(n);
    Put(" bytes received, expected ");
    PutHex32(crc);
    Put("]");
    EndLine();
    return false;
  }
  LineU("bin-ok", n);
  return true;
}

// --- the model ---------------------------------------------------------------------------------

// Per-operator cycles of the last Invoke, from TFLM's profiler interface (BeginEvent/EndEvent
// around every kernel's invoke).
class OpCycles : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    const uint32_t i = count_ < kMaxOps ? count_ : kMaxOps - 1;
    tags_[i] = tag;
    start_[i] = BoardCycles();
    if (count_ < kMaxOps) ++count_;
    return i;
  }
  void EndEvent(uint32_t handle) override { cycles_[handle] = BoardCycles() - start_[handle]; }
  void Reset() { count_ = 0; }
  void Report() const {
    for (uint32_t i = 0; i < count_; ++i) {
      Put("m-op-[");
      PutUnsigned(i);
      Put("]-[");
      Put(tags_[i] ? tags_[i] : "?");
      Put("]-[");
      Cycles(cycles_[i]);
      Put("]");
      EndLine();
    }
  }

 private:
  uint32_t count_ = 0;
  const char* tags_[kMaxOps] = {};
  uint32_t start_[kMaxOps] = {};
  uint32_t cycles_[kMaxOps] = {};
  TF_LITE_REMOVE_VIRTUAL_DELETE
};

OpCycles op_cycles;
tflite::MicroInterpreter* interpreter = nullptr;
uint32_t db_expected = 0;  // db load N
uint32_t db_loaded = 0;
bool input_loaded = false;

int8_t* Input() { return interpreter->input(0)->data.int8; }
const uint8_t* Output() { return reinterpret_cast<const uint8_t*>(interpreter->output(0)->data.int8); }
uint32_t InputBytes() { return static_cast<uint32_t>(interpreter->input(0)->bytes); }
uint32_t OutputBytes() { return static_cast<uint32_t>(interpreter->output(0)->bytes); }

// One Invoke with the per-operator profile; its cycles (meaningful when cycles are measured).
bool Invoke(uint32_t* cycles) {
  op_cycles.Reset();
  const uint32_t t0 = BoardCycles();
  const bool ok = interpreter->Invoke() == kTfLiteOk;
  *cycles = BoardCycles() - t0;
  if (!ok) Error("Invoke failed");
  return ok;
}

void Results() {
  Put("m-results-[");
  PutHex(Output(), static_cast<int>(OutputBytes()));
  Put("]");
  EndLine();
}

// --- the front end (PCM to class) --------------------------------------------------------------

#ifndef MODEL_NO_FRONTEND
struct Clip {
  uint32_t bytes_per_sample;
  bool dump_inputs;
  int next_window;
  bool ok;
  uint32_t frontend_cycles;
  uint32_t invoke_cycles;  // inside the frame callback: subtracted from the front end's
#ifdef MODEL_WINDOWED
  ClipAccumulator acc;
#endif
};
Clip clip = {};
bool clip_open = false;

int8_t* Columns() {
#ifdef MODEL_WINDOWED
  return column_ring;
#else
  return Input();  // the input tensor is the column store
#endif
}

// The front end's frame callback: run every window whose last frame this is, and report it.
void OnFrame(int frame, void*) {
  while (clip.ok && clip.next_window < kWindowsPerClip && frame == kStarts[clip.next_window] + kNumFrames - 1) {
#ifdef MODEL_WINDOWED
    FrontEndCopyWindow(column_ring, kStarts[clip.next_window], Input());
#endif
    if (clip.dump_inputs) {
      Put("m-input-[");
      PutUnsigned(static_cast<uint32_t>(clip.next_window));
      Put("]-[");
      PutHex(reinterpret_cast<const uint8_t*>(Input()), static_cast<int>(InputBytes()));
      Put("]");
      EndLine();
    }
    // before Invoke: TFLM may reuse the input tensor's memory for later tensors
    const uint32_t input_crc = Crc32(0, reinterpret_cast<const uint8_t*>(Input()), static_cast<int>(InputBytes()));
    uint32_t cycles = 0;
    if (!Invoke(&cycles)) {
      clip.ok = false;
      return;
    }
    clip.invoke_cycles += cycles;
#ifdef MODEL_WINDOWED
    ClipAccumulatorAdd(&clip.acc, interpreter->output(0)->data.int8);
#endif
    Put("m-window-[");
    PutUnsigned(static_cast<uint32_t>(clip.next_window));
    Put("]-[");
    PutHex32(input_crc);
    Put("]-[");
    PutHex(Output(), static_cast<int>(OutputBytes()));
    Put("]-[");
    Cycles(cycles);
    Put("]");
    EndLine();
    clip.next_window += 1;
  }
}

void PcmBegin(const char* args) {
  uint32_t bytes = 0, dump = 0;
  if (!Number(&args, &bytes) || !Number(&args, &dump) || (bytes != 2 && bytes != 3) || dump > 1) {
    Error("usage: pcm begin BYTES_PER_SAMPLE(2|3) DUMP_INPUTS(0|1)");
    return;
  }
  clip = Clip{bytes, dump == 1, 0, true, 0, 0};
#ifdef MODEL_WINDOWED
  ClipAccumulatorReset(&clip.acc);
#endif
  clip_open = FrontEndBegin(&frontend, OnFrame, nullptr);
  if (!clip_open) {
    Error("FrontEndBegin failed");
    return;
  }
  LineU("pcm-begin", kFrontEndFrames);
}

void PcmChunk(const char* args) {
  uint32_t n = 0, crc = 0;
  if (!Number(&args, &n) || !Number(&args, &crc, true)) {
    Error("usage: pcm BYTES CRC32HEX");
    return;
  }
  if (!clip_open) {
    Error("pcm: no clip begun (pcm begin B D% first)");
    return;
  }
  if (n == 0 || n > static_cast<uint32_t>(kPcmBufferBytes) || n % clip.bytes_per_sample) {
    Put("m-error-[pcm: ");
    PutUnsigned(n);
    Put(" bytes: a chunk is 1 to ");
    PutUnsigned(kPcmBufferBytes);
    Put(" bytes of whole samples]");
    EndLine();
    return;
  }
  if (!ReadBlock(pcm_buffer, n, crc, "pcm")) {
    clip_open = false;  // a lost chunk: the clip is void
    return;
  }
  const int samples = static_cast<int>(n / clip.bytes_per_sample);
  const uint32_t t0 = BoardCycles();
  const uint32_t invokes = clip.invoke_cycles;
  if (clip.bytes_per_sample == 2) {
    FrontEndPushPcm16(&frontend, reinterpret_cast<const int16_t*>(pcm_buffer), samples, Columns(), nullptr);
  } else {
    FrontEndPushPcm24(&frontend, pcm_buffer, samples, Columns(), nullptr);
  }
  clip.frontend_cycles += (BoardCycles() - t0) - (clip.invoke_cycles - invokes);
}

void PcmEnd() {
  if (!clip_open) {
    Error("pcm end: no clip begun, or the clip was voided by an earlier error");
    return;
  }
  const uint32_t t0 = BoardCycles();
  const uint32_t invokes = clip.invoke_cycles;
  FrontEndFinish(&frontend, Columns(), nullptr);
  clip.frontend_cycles += (BoardCycles() - t0) - (clip.invoke_cycles - invokes);
  clip_open = false;
  if (!clip.ok) return;
  if (!FrontEndClipComplete(&frontend) || clip.next_window != kWindowsPerClip) {
    Error("pcm end: clip incomplete");
    return;
  }
#ifdef MODEL_WINDOWED
  const uint32_t decision = static_cast<uint32_t>(ClipAccumulatorDecision(&clip.acc));
#else
  // one inference: the lowest index of the largest output
  const int8_t* out = interpreter->output(0)->data.int8;
  uint32_t decision = 0;
  for (int k = 1; k < kNumClasses; ++k) {
    if (out[k] > out[decision]) decision = static_cast<uint32_t>(k);
  }
#endif
  Put("m-clip-[");
  PutUnsigned(static_cast<uint32_t>(clip.next_window));
  Put("]-[");
  PutUnsigned(decision);
  Put("]-[");
  Cycles(clip.frontend_cycles);
  Put("]-[");
  Cycles(clip.invoke_cycles);
  Put("]");
  EndLine();
}
#endif  // MODEL_NO_FRONTEND

// --- commands ----------------------------------------------------------------------------------

void Profile() {
  Line("profile", ASC_PROTOCOL);
  Line("info-board", board.board);
  Line("info-chip", board.chip);
  LineU("info-clock-hz", board.clock_hz);
  LineU("info-target-clock-hz", board.target_clock_hz);
  Line("info-clock-note", board.clock_note);
  Line("info-uart", board.uart);
  LineU("info-baud", board.baud);
  Line("info-cycles", board.cycles_measured ? "measured" : "not measured");
  LineU("info-input-bytes", InputBytes());
  LineU("info-output-bytes", OutputBytes());
  LineU("info-windows", kWindowsPerClip);
  LineU("info-pcm-max-bytes", kPcmBufferBytes);
  LineU("info-arena-bytes", kTensorArenaSize);
  LineU("info-arena-used", static_cast<uint32_t>(interpreter->arena_used_bytes()));
  LineU("info-stack-used", StackUsedBytes());
  Put("m-info-model-crc32-[");
  PutHex32(Crc32(0, g_model_data, static_cast<int>(g_model_data_len)));
  Put("]");
  EndLine();
}

void DbLoad(const char* args) {
  uint32_t n = 0;
  if (!Number(&args, &n) || n != InputBytes()) {
    Put("m-error-[db load: the model's input is ");
    PutUnsigned(InputBytes());
    Put(" bytes]");
    EndLine();
    db_expected = 0;
    return;
  }
  db_expected = n;
  db_loaded = 0;
  input_loaded = false;
  Put("m-[Expecting ");
  PutUnsigned(n);
  Put(" bytes]");
  EndLine();
}

void DbHex(const char* hex) {
  if (db_expected == 0) {
    Error("db: no db load N% before");
    return;
  }
  uint8_t* input = reinterpret_cast<uint8_t*>(Input());
  for (; hex[0] && hex[1]; hex += 2) {
    const int hi = HexDigit(hex[0]), lo = HexDigit(hex[1]);
    if (hi < 0 || lo < 0 || db_loaded >= db_expected) {
      Error(hi < 0 || lo < 0 ? "db: not hexadecimal" : "db: more bytes than db load announced");
      db_expected = 0;
      return;
    }
    input[db_loaded++] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (db_loaded == db_expected) {
    input_loaded = true;
    db_expected = 0;
    Bare("load-done");
  }
}

void Bin(const char* args) {
  uint32_t n = 0, crc = 0;
  input_loaded = false;
  if (!Number(&args, &n) || !Number(&args, &crc, true)) {
    Error("usage: bin BYTES CRC32HEX");
    return;
  }
  if (n != InputBytes()) {
    Put("m-error-[bin: ");
    PutUnsigned(n);
    Put(" bytes announced, the model's input is ");
    PutUnsigned(InputBytes());
    Put(" bytes]");
    EndLine();
    return;
  }
  input_loaded = ReadBlock(reinterpret_cast<uint8_t*>(Input()), n, crc, "input");
}

void Infer(const char* args) {
  uint32_t n = 1, warmups = 0;
  Number(&args, &n);
  Number(&args, &warmups);
  if (!input_loaded) {
    Error("infer: no input loaded (bin N CRC% or db load N% + db HEX%)");
    return;
  }
  uint32_t cycles = 0, total = 0;
  LineU("warmup-start", warmups);
  for (uint32_t i = 0; i < warmups; ++i) {
    if (!Invoke(&cycles)) return;
  }
  LineU("infer-start", n);
  for (uint32_t i = 0; i < n; ++i) {
    if (!Invoke(&cycles)) return;
    total += cycles;
  }
  Put("m-infer-done-[");
  PutUnsigned(n);
  Put("]-[");
  Cycles(total);
  Put("]");
  EndLine();
  op_cycles.Report();
  Results();
}

void Dispatch(const char* c) {
  if (!strcmp(c, "name")) {
    Put("m-name-dut-[asc-tinyml ");
    Put(board.board);
    Put("]");
    EndLine();
  } else if (!strcmp(c, "profile")) {
    Profile();
  } else if (Starts(c, "db load")) {
    DbLoad(c + 7);
  } else if (Starts(c, "db ")) {
    DbHex(c + 3);
  } else if (Starts(c, "bin ")) {
    Bin(c + 4);
  } else if (Starts(c, "infer")) {
    Infer(c + 5);
  } else if (!strcmp(c, "results")) {
    Results();
#ifndef MODEL_NO_FRONTEND
  } else if (Starts(c, "pcm begin")) {
    PcmBegin(c + 9);
  } else if (!strcmp(c, "pcm end")) {
    PcmEnd();
  } else if (Starts(c, "pcm ")) {
    PcmChunk(c + 4);
#endif
  } else {
    Error("unknown command");
  }
}

// Reads one command up to its `%`; CR, LF and leading spaces are ignored. False when it was too long.
bool ReadCommand() {
  int n = 0;
  bool too_long = false;
  for (;;) {
    const int c = BoardUartRead(0xFFFFFFFFu);
    if (c < 0) continue;  // idle (or an overrun between commands: nothing to lose)
    if (c == '%') break;
    if (c == '\r' || c == '\n' || (c == ' ' && n == 0)) continue;
    if (n < kCommandMax) {
      command[n++] = static_cast<char>(c);
    } else {
      too_long = true;
    }
  }
  command[n] = 0;
  return !too_long;
}

}  // namespace

int main() {
  PaintStack();
  BoardInit(&board);
  const tflite::Model* model = tflite::GetModel(g_model_data);
  static tflite::MicroInterpreter static_interpreter(model, op_resolver, tensor_arena, kTensorArenaSize, nullptr,
                                                     &op_cycles);
  interpreter = &static_interpreter;
  Put("m-boot-[" ASC_PROTOCOL " ");
  Put(board.board);
  Put("]");
  EndLine();
  if (RegisterModelOps(op_resolver) != kTfLiteOk || interpreter->AllocateTensors() != kTfLiteOk) {
    Error("AllocateTensors failed: kTensorArenaSize is too small for this build");
    for (;;) {
    }
  }
  Bare("ready");
  for (;;) {
    if (ReadCommand()) {
      Dispatch(command);
    } else {
      Error("command longer than 1024 bytes");
    }
    Bare("ready");
  }
}
