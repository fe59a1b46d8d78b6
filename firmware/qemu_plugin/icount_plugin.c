/* Exact instruction counts per program segment, for qemu-system-arm (QEMU 7.2 TCG plugin).
 *
 *   qemu-system-arm ... -plugin icount_plugin.so,out=FILE,mark=0xADDR[,mark=0xADDR...]
 *
 * The firmware marks segment boundaries by calling small no-inline functions (firmware/asc_profile.cc);
 * each `mark=` is the address of one of them, and its position in the argument list is its kind
 * (0, 1, ...). Every execution of the translation block (TB) that starts at a mark address ends
 * the current segment and starts a new one of that kind; the program's start (before any mark)
 * is a segment of kind -1.
 *
 * Per segment the plugin records, for every TB executed in it, how often it ran and how often the
 * next TB did NOT start at its fall-through address (the address after its last instruction):
 * for a TB ending in a conditional branch, the times the branch was taken. A global table gives
 * each TB's instruction addresses and sizes, written once when QEMU translates it (a TB id is
 * its translation's number; a retranslated address gets a new id). Independently of that
 * bookkeeping, an inline counter that QEMU adds to on every instruction (no callback) is
 * snapshotted at each segment start, so the reader can check that count x TB length summed over
 * a segment equals the instructions actually executed in it.
 *
 * The per-TB callback only bumps two counters in dense arrays indexed by TB id and remembers the
 * TB; a segment's counters are written and cleared when the segment ends (only the TBs it
 * touched). One vCPU (the MPS2/MPS3 boards have one).
 *
 * Output (little-endian, every record starting on a 4-byte boundary):
 *   header   "ASCICNT1" (8 bytes), u32 format version (1), u32 number of mark kinds
 *   TB       u32 1, u32 tb id, u64 start address, u32 n insns, u32 0,
 *            n x u64 insn address, n x u8 insn size, zero padding to a multiple of 4
 *   segment  u32 2, i32 kind, u64 inline instruction count at the segment's start,
 *            u32 n entries, u32 0, n x {u32 tb id, u32 0, u64 executions, u64 not-fall-through}
 *   end      u32 3, u32 marks found inside a TB (not at its start: the segment boundaries are
 *            then wrong and the reader refuses the file), u64 inline instruction count at exit,
 *            u64 TBs translated
 *
 * Built by firmware_harness/icount.py with the host's gcc (-shared -fPIC) into the build cache.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

ASC_PLUGIN_EXPORT int qemu_plugin_version = ASC_QEMU_PLUGIN_API_VERSION;

enum { kMaxMarks = 32, kFormatVersion = 1, kTagTb = 1, kTagSegment = 2, kTagEnd = 3 };

typedef struct {
  uint64_t vaddr;
  uint64_t fallthrough; /* address after the TB's last instruction */
} TbInfo;

static FILE* out;
static uint64_t marks[kMaxMarks];
static int n_marks;

static TbInfo* tbs;          /* by TB id */
static int8_t* tb_mark_kind; /* by TB id: kind of the mark the TB starts at, or -1 */
static uint64_t* seg_count;  /* by TB id: executions in the current segment */
static uint64_t* seg_taken;  /* by TB id: next TB not at the fall-through, current segment */
static uint32_t* touched;    /* TB ids with seg_count > 0, in order of first execution */
static uint32_t n_touched;
static uint32_t n_tbs, cap_tbs;

static int64_t prev_tb = -1;
static int32_t seg_kind = -1;
static uint64_t seg_start_icount;
static uint64_t icount; /* QEMU adds 1 to it inline for every executed instruction */
static uint32_t marks_inside;
static int finished;

static void Fatal(const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "icount_plugin: %s\n", what);
  qemu_plugin_outs(msg);
  fprintf(stderr, "%s", msg);
  exit(70);
}

static void Write(const void* data, size_t bytes) {
  if (fwrite(data, 1, bytes, out) != bytes) Fatal("write to the output file failed");
}

static void WriteU32(uint32_t v) { Write(&v, 4); }
static void WriteU64(uint64_t v) { Write(&v, 8); }

static void* Grow(void* p, size_t elements, size_t size) {
  void* q = realloc(p, elements * size);
  if (q == NULL) Fatal("out of memory");
  return q;
}

static uint32_t NewTb(uint64_t vaddr, uint64_t fallthrough, int mark_kind) {
  if (n_tbs == cap_tbs) {
    const uint32_t old = cap_tbs;
    cap_tbs = cap_tbs ? 2 * cap_tbs : 4096;
    tbs = Grow(tbs, cap_tbs, sizeof *tbs);
    tb_mark_kind = Grow(tb_mark_kind, cap_tbs, sizeof *tb_mark_kind);
    seg_count = Grow(seg_count, cap_tbs, sizeof *seg_count);
    seg_taken = Grow(seg_taken, cap_tbs, sizeof *seg_taken);
    touched = Grow(touched, cap_tbs, sizeof *touched);
    memset(seg_count + old, 0, (cap_tbs - old) * sizeof *seg_count);
    memset(seg_taken + old, 0, (cap_tbs - old) * sizeof *seg_taken);
  }
  tbs[n_tbs].vaddr = vaddr;
  tbs[n_tbs].fallthrough = fallthrough;
  tb_mark_kind[n_tbs] = (int8_t)mark_kind;
  return n_tbs++;
}

/* The transition from the previous TB to `id`, counted in the current segment. */
static inline void Arrive(uint32_t id) {
  if (prev_tb >= 0 && tbs[prev_tb].fallthrough != tbs[id].vaddr) seg_taken[prev_tb] += 1;
}

static inline void Count(uint32_t id) {
  if (seg_count[id]++ == 0) touched[n_touched++] = id;
  prev_tb = id;
}

static void FlushSegment(void) {
  WriteU32(kTagSegment);
  WriteU32((uint32_t)seg_kind);
  WriteU64(seg_start_icount);
  WriteU32(n_touched);
  WriteU32(0);
  for (uint32_t i = 0; i < n_touched; ++i) {
    const uint32_t id = touched[i];
    WriteU32(id);
    WriteU32(0);
    WriteU64(seg_count[id]);
    WriteU64(seg_taken[id]);
    seg_count[id] = 0;
    seg_taken[id] = 0;
  }
  n_touched = 0;
}

static void OnTb(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  const uint32_t id = (uint32_t)(uintptr_t)userdata;
  Arrive(id);
  Count(id);
}

static void OnMarkTb(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  const uint32_t id = (uint32_t)(uintptr_t)userdata;
  Arrive(id); /* the previous TB belongs to the segment that ends here */
  FlushSegment();
  seg_kind = tb_mark_kind[id];
  seg_start_icount = icount; /* this TB's instructions are not counted yet: the TB callback runs first */
  Count(id);
}

static int MarkKind(uint64_t vaddr) {
  for (int k = 0; k < n_marks; ++k) {
    if (marks[k] == vaddr) return k;
  }
  return -1;
}

static void OnTranslate(qemu_plugin_id_t plugin, struct qemu_plugin_tb* tb) {
  (void)plugin;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  if (n == 0) return;
  const uint64_t start = qemu_plugin_tb_vaddr(tb);
  uint64_t addrs[n];
  uint8_t sizes[n];
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    addrs[i] = qemu_plugin_insn_vaddr(insn);
    sizes[i] = (uint8_t)qemu_plugin_insn_size(insn);
    if (i > 0 && MarkKind(addrs[i]) >= 0) marks_inside += 1;
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &icount, 1);
  }
  const int kind = MarkKind(start);
  const uint32_t id = NewTb(start, addrs[n - 1] + sizes[n - 1], kind);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, kind >= 0 ? OnMarkTb : OnTb, QEMU_PLUGIN_CB_NO_REGS,
                                       (void*)(uintptr_t)id);
  WriteU32(kTagTb);
  WriteU32(id);
  WriteU64(start);
  WriteU32((uint32_t)n);
  WriteU32(0);
  Write(addrs, n * sizeof addrs[0]);
  Write(sizes, n);
  static const uint8_t zeros[4] = {0, 0, 0, 0};
  if (n % 4) Write(zeros, 4 - n % 4);
}

static void Finish(qemu_plugin_id_t plugin, void* userdata) {
  (void)plugin;
  (void)userdata;
  if (finished) return;
  finished = 1;
  FlushSegment();
  WriteU32(kTagEnd);
  WriteU32(marks_inside);
  WriteU64(icount);
  WriteU64(n_tbs);
  if (fclose(out) != 0) Fatal("closing the output file failed");
}

static int ParseArgs(int argc, char** argv, const char** path) {
  for (int i = 0; i < argc; ++i) {
    const char* a = argv[i];
    if (strncmp(a, "out=", 4) == 0) {
      *path = a + 4;
    } else if (strncmp(a, "mark=", 5) == 0) {
      char* end = NULL;
      const unsigned long long v = strtoull(a + 5, &end, 0);
      if (end == a + 5 || *end != 0 || n_marks == kMaxMarks) return -1;
      marks[n_marks++] = (uint64_t)v & ~(uint64_t)1; /* a Thumb symbol's bit 0 is not part of the address */
    } else {
      return -1;
    }
  }
  return *path != NULL && n_marks > 0 ? 0 : -1;
}

ASC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
  const char* path = NULL;
  if (ParseArgs(argc, argv, &path) != 0) {
    qemu_plugin_outs("icount_plugin: usage: -plugin icount_plugin.so,out=FILE,mark=0xADDR[,mark=0xADDR...]\n");
    return -1;
  }
  if (info->system_emulation && info->system.smp_vcpus != 1) {
    qemu_plugin_outs("icount_plugin: needs exactly one vCPU\n");
    return -1;
  }
  out = fopen(path, "wb");
  if (out == NULL) {
    qemu_plugin_outs("icount_plugin: cannot open the out= file\n");
    return -1;
  }
  static char buffer[1 << 20];
  setvbuf(out, buffer, _IOFBF, sizeof buffer);
  Write("ASCICNT1", 8);
  WriteU32(kFormatVersion);
  WriteU32((uint32_t)n_marks);
  qemu_plugin_register_vcpu_tb_trans_cb(id, OnTranslate);
  qemu_plugin_register_atexit_cb(id, Finish, NULL);
  return 0;
}
