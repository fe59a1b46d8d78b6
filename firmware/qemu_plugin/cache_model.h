/* A cache in front of a microcontroller's flash, simulated access by access: the memory-system
 * model of firmware/qemu_plugin/icount_plugin.c (and of the host tests, which compile this file
 * alone into a shared library and drive it with hand-made address streams).
 *
 * Geometry (documented per MCU in tflite_export/mcu_targets.py, CacheGeometry):
 *   lines        cache lines in all (each with one address tag)
 *   line_bytes   bytes one line holds (a power of two)
 *   ways         lines per set: 1 direct-mapped, `lines` fully associative; sets = lines / ways,
 *                the set of an address is (address / line_bytes) mod sets
 *   fill_bytes   what one flash access brings in (a power of two dividing line_bytes, at most 32
 *                per line): a line whose tag is present but whose fill unit is not yet read is
 *                filled unit by unit (a sectored line, as the STM32L4+ ART's 4 x 64-bit lines)
 *   prefetch     1: a sequential next-unit prefetch buffer on instruction fetch (ST's ART PRFTEN)
 * Replacement: least recently used within a set (a hit, a fill or a prefetch hit makes the line the
 * most recent; a miss evicts the least recent line of its set, or an invalid one first). Each line
 * slot keeps the time of its last use; a table indexed by the line address's low bits remembers
 * the slot a line was last found in, so a hit usually costs one comparison (a wrong or stale entry
 * only sends the lookup through its set).
 *
 * Every access is one fill unit (`AscCacheAccess` / `AscCacheFetch` take the unit's address; a
 * caller splits an access spanning two units). Outcomes: a hit (tag present and unit valid), a
 * prefetch hit (the unit is the one in the prefetch buffer: it is moved into the cache), or a miss
 * (the unit is read from flash and put into the cache).
 *
 * Prefetch (only with `prefetch` set, only through AscCacheFetch): after every fetch of unit u the
 * buffer is aimed at unit u + 1 unless it already holds it or the cache does; the instructions
 * executed from then on are counted (the `insns` passed with each fetch), and a prefetch hit reports
 * how many had executed since the buffer was aimed (`last_prefetch_lead`): the caller prices the
 * part of the flash latency that those instructions did not hide. Data reads (AscCacheAccess)
 * neither use nor move the prefetch buffer.
 *
 * Deterministic: no randomness, no dependence on host addresses or time.
 */
#ifndef ASC_CACHE_MODEL_H
#define ASC_CACHE_MODEL_H

#include <stdint.h>

enum { kAscCacheHit = 0, kAscCacheMiss = 1, kAscCachePrefetchHit = 2, kAscCacheHints = 1 << 16 };

typedef struct {
  uint32_t lines, line_bytes, ways, fill_bytes;
  int prefetch;
  uint32_t sets;
  uint32_t line_shift, fill_shift;
  uint64_t* tags;       /* sets x ways (slot = set * ways + way): the line (address / line_bytes); ~0: invalid */
  uint32_t* valid;      /* per slot: bit i = fill unit i of the line was read */
  uint64_t* last_use;   /* per slot: the access count at its last use (0: never) */
  uint32_t* hint;       /* kAscCacheHints entries: a slot where the line with these low bits was last found */
  uint64_t clock;       /* accesses so far */
  uint64_t prefetch_unit; /* the unit (address / fill_bytes) in the prefetch buffer */
  int prefetch_valid;
  uint64_t prefetch_since; /* instructions fetched since the buffer was aimed at prefetch_unit */
  uint64_t last_prefetch_lead; /* of the last prefetch hit: instructions executed while it was read */
} AscCache;

/* 0 and an empty cache; -1 (nothing allocated) when the geometry is not one described above. */
int AscCacheInit(AscCache* cache, uint32_t lines, uint32_t line_bytes, uint32_t ways, uint32_t fill_bytes,
                 int prefetch);
void AscCacheFree(AscCache* cache);
/* A data read of the fill unit at `address`: kAscCacheHit or kAscCacheMiss. */
int AscCacheAccess(AscCache* cache, uint64_t address);
/* An instruction fetch of the fill unit at `address`, from which `insns` instructions then execute. */
int AscCacheFetch(AscCache* cache, uint64_t address, uint32_t insns);

#endif /* ASC_CACHE_MODEL_H */
