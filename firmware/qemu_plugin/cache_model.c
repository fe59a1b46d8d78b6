/* The flash cache simulator declared (and described) in cache_model.h. */
#include "cache_model.h"

#include <stdlib.h>
#include <string.h>

static const uint64_t kInvalidTag = ~(uint64_t)0;

static int IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

static uint32_t Log2(uint32_t v) {
  uint32_t s = 0;
  while ((1u << s) < v) ++s;
  return s;
}

int AscCacheInit(AscCache* cache, uint32_t lines, uint32_t line_bytes, uint32_t ways, uint32_t fill_bytes,
                 int prefetch) {
  memset(cache, 0, sizeof *cache);
  if (lines == 0 || ways == 0 || lines % ways != 0 || !IsPowerOfTwo(line_bytes) || !IsPowerOfTwo(fill_bytes) ||
      fill_bytes > line_bytes || line_bytes / fill_bytes > 32) {
    return -1;
  }
  cache->lines = lines;
  cache->line_bytes = line_bytes;
  cache->ways = ways;
  cache->fill_bytes = fill_bytes;
  cache->prefetch = prefetch != 0;
  cache->sets = lines / ways;
  cache->line_shift = Log2(line_bytes);
  cache->fill_shift = Log2(fill_bytes);
  cache->tags = malloc((size_t)lines * sizeof *cache->tags);
  cache->valid = calloc(lines, sizeof *cache->valid);
  cache->last_use = calloc(lines, sizeof *cache->last_use);
  cache->hint = calloc(kAscCacheHints, sizeof *cache->hint);
  if (cache->tags == NULL || cache->valid == NULL || cache->last_use == NULL || cache->hint == NULL) {
    AscCacheFree(cache);
    return -1;
  }
  for (uint32_t i = 0; i < lines; ++i) cache->tags[i] = kInvalidTag;
  return 0;
}

void AscCacheFree(AscCache* cache) {
  free(cache->tags);
  free(cache->valid);
  free(cache->last_use);
  free(cache->hint);
  cache->tags = NULL;
  cache->valid = NULL;
  cache->last_use = NULL;
  cache->hint = NULL;
}

/* The slot holding `line`, or `lines` when it is not in the cache (remembered in the hint table). */
static inline uint32_t Find(AscCache* c, uint64_t line) {
  uint32_t* hint = &c->hint[line & (kAscCacheHints - 1)];
  if (c->tags[*hint] == line) return *hint;
  const uint32_t base = (uint32_t)(line % c->sets) * c->ways;
  for (uint32_t w = base; w < base + c->ways; ++w) {
    if (c->tags[w] == line) {
      *hint = w;
      return w;
    }
  }
  return c->lines;
}

/* Whether fill unit `unit` is in the cache (no change to the recency order). */
static int Contains(AscCache* c, uint64_t unit) {
  const uint64_t line = unit >> (c->line_shift - c->fill_shift);
  const uint32_t bit = 1u << (uint32_t)(unit & ((1u << (c->line_shift - c->fill_shift)) - 1));
  const uint32_t slot = Find(c, line);
  return slot < c->lines && (c->valid[slot] & bit) != 0;
}

/* Reads fill unit `unit` through the cache: 1 when it was there (a hit), 0 when it was read into
 * it (the line allocated in place of the set's least recently used one, or of an invalid one, if
 * its tag was absent). Either way its line becomes the set's most recent. */
static int Touch(AscCache* c, uint64_t unit) {
  const uint64_t line = unit >> (c->line_shift - c->fill_shift);
  const uint32_t bit = 1u << (uint32_t)(unit & ((1u << (c->line_shift - c->fill_shift)) - 1));
  uint32_t slot = Find(c, line);
  int hit = 0;
  if (slot < c->lines) {
    hit = (c->valid[slot] & bit) != 0;
    c->valid[slot] |= bit;
  } else {
    const uint32_t base = (uint32_t)(line % c->sets) * c->ways;
    slot = base;
    for (uint32_t w = base + 1; w < base + c->ways; ++w) {
      if (c->last_use[w] < c->last_use[slot]) slot = w;
    }
    c->tags[slot] = line;
    c->valid[slot] = bit;
    c->hint[line & (kAscCacheHints - 1)] = slot;
  }
  c->last_use[slot] = ++c->clock;
  return hit;
}

int AscCacheAccess(AscCache* cache, uint64_t address) {
  return Touch(cache, address >> cache->fill_shift) ? kAscCacheHit : kAscCacheMiss;
}

int AscCacheFetch(AscCache* cache, uint64_t address, uint32_t insns) {
  const uint64_t unit = address >> cache->fill_shift;
  int outcome = kAscCacheMiss;
  if (Touch(cache, unit)) {
    outcome = kAscCacheHit;
  } else if (cache->prefetch && cache->prefetch_valid && cache->prefetch_unit == unit) {
    outcome = kAscCachePrefetchHit;
    cache->last_prefetch_lead = cache->prefetch_since;
    cache->prefetch_valid = 0;
  }
  if (cache->prefetch) {
    const uint64_t next = unit + 1;
    if (!(cache->prefetch_valid && cache->prefetch_unit == next)) {
      if (Contains(cache, next)) {
        cache->prefetch_valid = 0;
      } else {
        cache->prefetch_unit = next;
        cache->prefetch_valid = 1;
        cache->prefetch_since = 0;
      }
    }
    cache->prefetch_since += insns;
  }
  return outcome;
}
