/* The part of QEMU's TCG plugin C API that icount_plugin.c uses, declared here because Debian 12's
 * QEMU 7.2 packages ship plugin support in qemu-system-arm but not the `qemu-plugin.h` header.
 *
 * These are our own declarations of the functions, types and constants as QEMU 7.2 defines them
 * (API version 1, the version QEMU 7.2 accepts; the ABI is plain C: a 64-bit plugin id, opaque
 * handles, `unsigned int` vCPU indexes, `uint64_t` guest addresses). QEMU resolves the functions
 * against its own executable when it loads the plugin with dlopen(); it refuses a plugin whose
 * exported `qemu_plugin_version` is outside the range it supports.
 */
#ifndef ASC_QEMU_PLUGIN_API_H
#define ASC_QEMU_PLUGIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASC_QEMU_PLUGIN_API_VERSION 1
#define ASC_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;

/* Passed to qemu_plugin_install; valid only during that call. */
typedef struct {
  const char* target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;

struct qemu_plugin_tb;   /* opaque, valid during the translation callback only */
struct qemu_plugin_insn; /* opaque, likewise */

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0, QEMU_PLUGIN_CB_R_REGS = 1, QEMU_PLUGIN_CB_RW_REGS = 2 };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
/* Which accesses a memory callback is called for (reads 1, writes 2, both 3). */
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W = 2, QEMU_PLUGIN_MEM_RW = 3 };

/* A memory access, as passed to memory callbacks: query it with qemu_plugin_mem_size_shift. */
typedef uint32_t qemu_plugin_meminfo_t;

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
/* Called after each access of an instrumented instruction: the guest virtual address accessed. */
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void* userdata);

/* Exported by the plugin. */
ASC_PLUGIN_EXPORT extern int qemu_plugin_version;
ASC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv);

/* Provided by QEMU. */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb* tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void* userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn, enum qemu_plugin_op op, void* ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn* insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw, void* userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn* insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
/* The instruction's bytes as fetched (its size is qemu_plugin_insn_size); valid during translation. */
const void* qemu_plugin_insn_data(const struct qemu_plugin_insn* insn);
/* log2 of an access's size in bytes (0: a byte, 2: 32 bits, 3: 64 bits). */
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
/* Whether the access was a store. */
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
void qemu_plugin_outs(const char* string);

#endif /* ASC_QEMU_PLUGIN_API_H */
