/* Exact instruction counts per program segment, for qemu-system-arm (QEMU 7.2 TCG plugin), and
 * optionally the data reads each segment made from the image's flash.
 *
 *   qemu-system-arm ... -plugin icount_plugin.so,out=FILE,mark=0xADDR[,mark=0xADDR...]
 *                                                [,flash=0xLO:0xHI...][,cache=SPEC...]
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
 * Flash data reads (`flash=LO:HI`, one argument per address range [LO, HI), at most
 * kMaxFlashRanges; firmware_harness/icount.py passes the ELF's code+constants region): at
 * translation each instruction's encoding is decoded (Thumb-2, InstructionFlags below) and a
 * memory callback is registered on every load instruction except PC-relative literal loads of
 * a core register (LDR/LDRB/LDRH/LDRSB/LDRSH [pc, #imm]): the cycle model prices exactly those
 * as its LOAD_LITERAL class, with their flash lines, so they are not counted here. LDRD and
 * VLDR with a PC base are counted, as the cycle model prices them as data loads. Loads based on
 * SP (POP, VPOP, LDR/LDRD/VLDR [sp, ...], LDM sp) read the stack, which the linker scripts put
 * in RAM (firmware/cortex_m/cortex_m_sections.ld: __stack_top at the end of RAM), so they can
 * never read flash and get no callback either (they are more than half of the executed loads).
 * The callback checks the address against the ranges and adds 1 and the access's bytes
 * (1 << qemu_plugin_mem_size_shift) to the current segment's two accumulators, which are
 * written with the segment record. Each access is one callback: LDM one per register, LDRD
 * two 4-byte reads, VLDR.64 one 8-byte read. Stores and instruction fetches are never counted.
 * Without `flash=` no memory callback is registered at all (no cost) and the counts are 0.
 * The callback is registered for QEMU_PLUGIN_MEM_RW and skips a store in a range
 * (qemu_plugin_mem_is_store; load instructions make none): QEMU 7.2's filter is off by one
 * (accel/tcg/plugin-gen.c op_rw tests `cb->rw & (rw + 1)`, so a QEMU_PLUGIN_MEM_R callback runs
 * on stores only; fixed after 7.2 by "accel/tcg/plugin: Fix op_rw", R. Henderson, qemu-devel
 * 2022-11-21), while RW is called for every access on either side of the fix.
 *
 * Memory systems (`cache=SPEC`, one argument per simulated microcontroller, at most kMaxCaches;
 * only with flash ranges): each is simulated in the same pass by cache_model.c, on the execution
 * order QEMU gives. SPEC is `I/D/PENALTY`: I the instruction-side cache as
 * `LINESxLINE_BYTESxWAYSxFILL_BYTES` with a `p` appended when it has a sequential prefetch buffer;
 * D the data side in the same form (no `p`), `i` when data reads go through the instruction-side
 * cache (a unified cache), or `0` when there is none (every data read from flash misses);
 * PENALTY the core cycles of one flash access (wait states x flash clock divider), used only for
 * prefetch hits (below). The geometry comes from tflite_export/mcu_targets.py; e.g. the STM32F407's
 * ART is `64x16x64x16p/8x16x8x16/5`.
 *   Instruction fetch: every execution of a TB fetches, in address order, each fill unit that holds
 *   the first byte of one of its instructions and lies in a flash range (computed once per TB at
 *   translation): fetch units touched, misses, prefetch hits, and the prefetch stall cycles
 *   sum over prefetch hits of max(0, PENALTY - instructions executed since the prefetch was
 *   issued), each instruction taken as one cycle (so the stall is an upper bound). The second
 *   halfword of a 32-bit instruction that straddles two units is not fetched separately.
 *   Data: every read callback in a flash range (the loads counted above, and also the PC-relative
 *   literal loads, which read flash through the same data path; their callback does not add to the
 *   flash data counters above) reads each fill unit its bytes span through D: data reads (units),
 *   misses. Stores are never simulated (flash is read-only to the program).
 * A TB's fetch is simulated when its callback runs, before its instructions' loads: within a TB the
 * order of fetches and data reads is approximate (it matters only to a unified cache).
 *
 * Instruction sizes come from the first halfword (Thumb-2: 32 bits when its top five bits are
 * 11101, 11110 or 11111), not from qemu_plugin_insn_size: QEMU 7.2's Thumb translator, after an
 * instruction that ends 2 bytes before a page boundary, reads the next halfword to see whether
 * the next instruction crosses the page (target/arm/translate.c insn_crosses_page), and that
 * read is appended to the plugin's bytes of the instruction just translated (2 bytes too many).
 *
 * The per-TB callback only bumps two counters in dense arrays indexed by TB id and remembers the
 * TB; a segment's counters are written and cleared when the segment ends (only the TBs it
 * touched). One vCPU (the MPS2/MPS3 boards have one).
 *
 * Output (little-endian, every record starting on a 4-byte boundary):
 *   header   "ASCICNT1" (8 bytes), u32 format version (3), u32 number of mark kinds,
 *            u32 number of flash ranges (0: flash reads not counted), u32 number of memory systems C,
 *            per range u64 first address, u64 end address (exclusive),
 *            per memory system u32 length of its SPEC, the SPEC's bytes, zero padding to 4
 *   TB       u32 1, u32 tb id, u64 start address, u32 n insns, u32 0,
 *            n x u64 insn address, n x u8 insn size, n x u8 insn flags (bit 0: a load, bit 1: a
 *            PC-relative literal load of a core register, bit 2: a load based on SP; a read
 *            callback is registered on the loads with neither bit 1 nor bit 2 when flash ranges
 *            were given), zero padding to a multiple of 4
 *   segment  u32 2, i32 kind, u64 inline instruction count at the segment's start,
 *            u64 flash data reads, u64 flash data bytes (both 0 without flash ranges),
 *            u32 n entries, u32 0, n x {u32 tb id, u32 0, u64 executions, u64 not-fall-through},
 *            u32 C, u32 0, C x {u64 fetch units, u64 fetch misses, u64 fetch prefetch hits,
 *            u64 prefetch stall cycles, u64 data units read, u64 data misses}
 *   end      u32 3, u32 marks found inside a TB (not at its start: the segment boundaries are
 *            then wrong and the reader refuses the file), u64 inline instruction count at exit,
 *            u64 TBs translated
 *
 * Built by firmware_harness/profiling/qemu_plugin.py with the host's gcc (-shared -fPIC), together with
 * cache_model.c, into the build cache.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_model.h"
#include "qemu_plugin_api.h"

ASC_PLUGIN_EXPORT int qemu_plugin_version = ASC_QEMU_PLUGIN_API_VERSION;

enum { kMaxMarks = 32, kMaxFlashRanges = 8, kMaxCaches = 8, kMaxSpec = 96, kFormatVersion = 3, kTagTb = 1, kTagSegment = 2, kTagEnd = 3 };
enum { kFlagLoad = 1, kFlagLiteral = 2, kFlagStack = 4 }; /* per instruction, see InstructionFlags */

typedef struct {
  uint64_t vaddr;
  uint64_t fallthrough; /* address after the TB's last instruction */
} TbInfo;

static FILE* out;
static uint64_t marks[kMaxMarks];
static int n_marks;
static uint64_t flash_lo[kMaxFlashRanges];
static uint64_t flash_size[kMaxFlashRanges]; /* vaddr is in range i when vaddr - flash_lo[i] < flash_size[i] */
static uint64_t flash_hi[kMaxFlashRanges];
static uint32_t n_flash;

/* One simulated memory system (`cache=`) and its counters in the current segment. */
typedef struct {
  char spec[kMaxSpec];
  AscCache icache, dcache;
  int data_side; /* 'd': its own data cache, 'i': through icache (unified), '0': none */
  uint64_t penalty;
  uint64_t fetches, fetch_misses, prefetch_hits, prefetch_stall, data_reads, data_misses;
} MemorySystem;

/* A fill unit a TB fetches and the number of its instructions that start in it. */
typedef struct {
  uint64_t address;
  uint32_t insns;
} FetchUnit;

static MemorySystem caches[kMaxCaches];
static uint32_t n_caches;
static FetchUnit* units;        /* every TB's fetch units, per memory system, back to back */
static uint32_t n_units, cap_units;
static uint32_t* tb_units;      /* by TB id x kMaxCaches: first index into units, and (next slot) the count */

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
static uint64_t seg_flash_reads; /* data reads from the flash ranges in the current segment */
static uint64_t seg_flash_bytes; /* and their bytes */
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
    tb_units = Grow(tb_units, (size_t)cap_tbs * 2 * kMaxCaches, sizeof *tb_units);
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
  WriteU64(seg_flash_reads);
  WriteU64(seg_flash_bytes);
  seg_flash_reads = 0;
  seg_flash_bytes = 0;
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
  WriteU32(n_caches);
  WriteU32(0);
  for (uint32_t k = 0; k < n_caches; ++k) {
    MemorySystem* m = &caches[k];
    const uint64_t v[6] = {m->fetches, m->fetch_misses, m->prefetch_hits, m->prefetch_stall, m->data_reads,
                           m->data_misses};
    Write(v, sizeof v);
    m->fetches = m->fetch_misses = m->prefetch_hits = m->prefetch_stall = m->data_reads = m->data_misses = 0;
  }
}

/* The fetches of one execution of TB `id` through every simulated memory system. */
static inline void SimulateFetch(uint32_t id) {
  for (uint32_t k = 0; k < n_caches; ++k) {
    MemorySystem* m = &caches[k];
    const uint32_t first = tb_units[((size_t)id * kMaxCaches + k) * 2];
    const uint32_t n = tb_units[((size_t)id * kMaxCaches + k) * 2 + 1];
    for (uint32_t u = first; u < first + n; ++u) {
      const int r = AscCacheFetch(&m->icache, units[u].address, units[u].insns);
      m->fetches += 1;
      if (r == kAscCacheMiss) {
        m->fetch_misses += 1;
      } else if (r == kAscCachePrefetchHit) {
        m->prefetch_hits += 1;
        const uint64_t lead = m->icache.last_prefetch_lead;
        if (lead < m->penalty) m->prefetch_stall += m->penalty - lead;
      }
    }
  }
}

/* A data read of `bytes` bytes at `vaddr` (in a flash range) through every memory system. */
static void SimulateDataRead(uint64_t vaddr, uint64_t bytes) {
  for (uint32_t k = 0; k < n_caches; ++k) {
    MemorySystem* m = &caches[k];
    AscCache* c = m->data_side == 'i' ? &m->icache : &m->dcache;
    const uint64_t unit = m->data_side == '0' ? 4 : c->fill_bytes;
    for (uint64_t a = vaddr & ~(unit - 1); a < vaddr + bytes; a += unit) {
      m->data_reads += 1;
      if (m->data_side == '0' || AscCacheAccess(c, a) == kAscCacheMiss) m->data_misses += 1;
    }
  }
}

static void OnTb(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  const uint32_t id = (uint32_t)(uintptr_t)userdata;
  Arrive(id);
  Count(id);
  SimulateFetch(id);
}

static void OnMarkTb(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  const uint32_t id = (uint32_t)(uintptr_t)userdata;
  Arrive(id); /* the previous TB belongs to the segment that ends here */
  FlushSegment();
  seg_kind = tb_mark_kind[id];
  seg_start_icount = icount; /* this TB's instructions are not counted yet: the TB callback runs first */
  Count(id);
  SimulateFetch(id);
}

static int InFlash(uint64_t vaddr) {
  for (uint32_t i = 0; i < n_flash; ++i) {
    if (vaddr - flash_lo[i] < flash_size[i]) return 1;
  }
  return 0;
}

/* A read by a load instruction (registered only with flash ranges): counted when it is in one
 * (userdata 1: a literal load, only simulated, not counted). */
static void OnLoad(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void* userdata) {
  (void)vcpu;
  if (!InFlash(vaddr) || qemu_plugin_mem_is_store(info)) return;
  const uint64_t bytes = (uint64_t)1 << qemu_plugin_mem_size_shift(info);
  if (userdata == NULL) {
    seg_flash_reads += 1;
    seg_flash_bytes += bytes;
  }
  SimulateDataRead(vaddr, bytes);
}

/* TB `id`'s fetch units for every memory system, from its instructions' addresses (in order). */
static void RecordFetchUnits(uint32_t id, const uint64_t* addrs, size_t n) {
  for (uint32_t k = 0; k < n_caches; ++k) {
    const uint64_t mask = ~((uint64_t)caches[k].icache.fill_bytes - 1);
    const uint32_t first = n_units;
    for (size_t i = 0; i < n; ++i) {
      if (!InFlash(addrs[i])) continue;
      const uint64_t unit = addrs[i] & mask;
      if (n_units > first && units[n_units - 1].address == unit) {
        units[n_units - 1].insns += 1;
        continue;
      }
      if (n_units == cap_units) {
        cap_units = cap_units ? 2 * cap_units : 65536;
        units = Grow(units, cap_units, sizeof *units);
      }
      units[n_units].address = unit;
      units[n_units].insns = 1;
      n_units += 1;
    }
    tb_units[((size_t)id * kMaxCaches + k) * 2] = first;
    tb_units[((size_t)id * kMaxCaches + k) * 2 + 1] = n_units - first;
  }
}

/* The size of the Thumb instruction whose bytes QEMU gave (`available` of them, see the header). */
static size_t ThumbSize(const uint8_t* b, size_t available) {
  if (available < 2) return available;
  const uint32_t top5 = b[1] >> 3;
  return top5 >= 0x1D && available >= 4 ? 4 : 2;
}

/* Whether a Thumb/Thumb-2 instruction (M profile) reads data memory: kFlagLoad, plus kFlagLiteral
 * for a PC-relative literal load (Rn = PC) of one core register, kFlagStack for a load based on
 * SP (10011 LDR (SP), POP, and every 32-bit load with Rn = 1101). Decoded from the encoding
 * (Armv7-M / Armv8-M ARM, "Thumb instruction set encoding"; halfwords little-endian, hw1 first):
 *   16-bit  01001 LDR (literal); 0101 with opB >= 011 LDRSB/LDR/LDRH/LDRB/LDRSH (register);
 *           01101 LDR, 01111 LDRB, 10001 LDRH (immediate); 10011 LDR (SP); 1011110 POP; 11001 LDM
 *   32-bit  1110100 xx0x1 LDM/LDMDB/POP.W; 1110100 xx1x1 LDRD, LDREX*, LDA*, TBB/TBH (except SG);
 *           1111100 xxxx1 LDR/LDRB/LDRH/LDRSB/LDRSH (all forms; Rt = PC with a byte or halfword
 *           size is PLD/PLI: no access); 111x110 PUxW1 (not P=U=W=0: MRRC) coprocessor/FP/MVE loads:
 *           VLDR, VLDM, VPOP, VLLDM, LDC, VLDR<x>/VLD2/VLD4 (MVE). A literal load is a single
 *           load of a core register with Rn = PC (01001, and 1111100 xxxx1 with Rn = 1111), the
 *           cycle model's LOAD_LITERAL class; LDRD and VLDR with Rn = PC are data reads for the
 *           cycle model (classes load_multiple and load) and are counted like any other load. */
static uint8_t InstructionFlags(const uint8_t* b, size_t size) {
  const uint32_t hw1 = (uint32_t)b[0] | (uint32_t)b[1] << 8;
  if (size == 2) {
    if ((hw1 & 0xF800) == 0x4800) return kFlagLoad | kFlagLiteral;
    if ((hw1 & 0xF000) == 0x5000 && ((hw1 >> 9) & 7) >= 3) return kFlagLoad;
    const uint32_t top5 = hw1 >> 11;
    if (top5 == 0x13 || (hw1 & 0xFE00) == 0xBC00) return kFlagLoad | kFlagStack;
    if (top5 == 0x0D || top5 == 0x0F || top5 == 0x11 || top5 == 0x19) return kFlagLoad;
    return 0;
  }
  if (size != 4) return 0;
  const uint32_t hw2 = (uint32_t)b[2] | (uint32_t)b[3] << 8;
  const uint32_t rn = hw1 & 0xF;
  const uint8_t load = rn == 0xD ? kFlagLoad | kFlagStack : kFlagLoad;
  if ((hw1 & 0xFE50) == 0xE810) return load;
  if ((hw1 & 0xFE50) == 0xE850) return hw1 == 0xE97F && hw2 == 0xE97F ? 0 : load;
  if ((hw1 & 0xFE10) == 0xF810) {
    const uint32_t size_bits = (hw1 >> 5) & 3;
    if (size_bits == 3 || ((hw2 >> 12) == 0xF && size_bits != 2)) return 0;
    return rn == 0xF ? kFlagLoad | kFlagLiteral : load;
  }
  if ((hw1 & 0xEE10) == 0xEC10 && (hw1 & 0x01A0) != 0) return load;
  return 0;
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
  uint8_t flags[n];
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    addrs[i] = qemu_plugin_insn_vaddr(insn);
    const uint8_t* bytes = qemu_plugin_insn_data(insn);
    sizes[i] = (uint8_t)ThumbSize(bytes, qemu_plugin_insn_size(insn));
    flags[i] = InstructionFlags(bytes, sizes[i]);
    if (i > 0 && MarkKind(addrs[i]) >= 0) marks_inside += 1;
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &icount, 1);
    if (n_flash > 0 && flags[i] == kFlagLoad) {
      qemu_plugin_register_vcpu_mem_cb(insn, OnLoad, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
    } else if (n_caches > 0 && flags[i] == (kFlagLoad | kFlagLiteral)) {
      qemu_plugin_register_vcpu_mem_cb(insn, OnLoad, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, (void*)1);
    }
  }
  const int kind = MarkKind(start);
  const uint32_t id = NewTb(start, addrs[n - 1] + sizes[n - 1], kind);
  RecordFetchUnits(id, addrs, n);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, kind >= 0 ? OnMarkTb : OnTb, QEMU_PLUGIN_CB_NO_REGS,
                                       (void*)(uintptr_t)id);
  WriteU32(kTagTb);
  WriteU32(id);
  WriteU64(start);
  WriteU32((uint32_t)n);
  WriteU32(0);
  Write(addrs, n * sizeof addrs[0]);
  Write(sizes, n);
  Write(flags, n);
  static const uint8_t zeros[4] = {0, 0, 0, 0};
  if (2 * n % 4) Write(zeros, 4 - 2 * n % 4);
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

/* One side's geometry `LINESxLINE_BYTESxWAYSxFILL_BYTES[p]` at *text into `cache` (prefetch only
 * where `allow_prefetch`); advances *text. 0, or -1 when malformed or not a valid geometry. */
static int ParseGeometry(const char** text, AscCache* cache, int allow_prefetch) {
  unsigned long v[4];
  const char* p = *text;
  for (int i = 0; i < 4; ++i) {
    char* end = NULL;
    v[i] = strtoul(p, &end, 10);
    if (end == p || v[i] == 0 || v[i] > (1ul << 24) || (i < 3 && *end != 'x')) return -1;
    p = i < 3 ? end + 1 : end;
  }
  int prefetch = 0;
  if (*p == 'p') {
    if (!allow_prefetch) return -1;
    prefetch = 1;
    ++p;
  }
  *text = p;
  return AscCacheInit(cache, (uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2], (uint32_t)v[3], prefetch);
}

/* `I/D/PENALTY` (see the header comment) into `m`; 0, or -1 when malformed. */
static int ParseCacheSpec(const char* spec, MemorySystem* m) {
  if (strlen(spec) >= kMaxSpec) return -1;
  strcpy(m->spec, spec);
  const char* p = spec;
  if (ParseGeometry(&p, &m->icache, 1) != 0 || *p++ != '/') return -1;
  if ((*p == 'i' || *p == '0') && p[1] == '/') {
    m->data_side = *p;
    p += 1;
  } else {
    m->data_side = 'd';
    if (ParseGeometry(&p, &m->dcache, 0) != 0) return -1;
  }
  if (*p++ != '/') return -1;
  char* end = NULL;
  const unsigned long penalty = strtoul(p, &end, 10);
  if (end == p || *end != 0) return -1;
  m->penalty = penalty;
  return 0;
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
    } else if (strncmp(a, "flash=", 6) == 0) {
      char* colon = NULL;
      char* end = NULL;
      const unsigned long long lo = strtoull(a + 6, &colon, 0);
      if (colon == a + 6 || *colon != ':' || n_flash == kMaxFlashRanges) return -1;
      const unsigned long long hi = strtoull(colon + 1, &end, 0);
      if (end == colon + 1 || *end != 0 || hi <= lo) return -1;
      flash_lo[n_flash] = lo;
      flash_hi[n_flash] = hi;
      flash_size[n_flash++] = hi - lo;
    } else if (strncmp(a, "cache=", 6) == 0) {
      if (n_caches == kMaxCaches || ParseCacheSpec(a + 6, &caches[n_caches]) != 0) return -1;
      n_caches += 1;
    } else {
      return -1;
    }
  }
  return *path != NULL && n_marks > 0 && (n_caches == 0 || n_flash > 0) ? 0 : -1;
}

ASC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
  const char* path = NULL;
  if (ParseArgs(argc, argv, &path) != 0) {
    qemu_plugin_outs("icount_plugin: usage: -plugin icount_plugin.so,out=FILE,mark=0xADDR[,mark=0xADDR...]"
                     "[,flash=0xLO:0xHI...][,cache=I/D/PENALTY...] (at most 32 marks, 8 flash ranges with LO < HI "
                     "and 8 caches, which need flash ranges; I and D as LINESxLINE_BYTESxWAYSxFILL_BYTES, see "
                     "icount_plugin.c)\n");
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
  WriteU32(n_flash);
  WriteU32(n_caches);
  for (uint32_t i = 0; i < n_flash; ++i) {
    WriteU64(flash_lo[i]);
    WriteU64(flash_hi[i]);
  }
  for (uint32_t k = 0; k < n_caches; ++k) {
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    const uint32_t len = (uint32_t)strlen(caches[k].spec);
    WriteU32(len);
    Write(caches[k].spec, len);
    if (len % 4) Write(zeros, 4 - len % 4);
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, OnTranslate);
  qemu_plugin_register_atexit_cb(id, Finish, NULL);
  return 0;
}
