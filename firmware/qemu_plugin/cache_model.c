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
  if (cache->tags == NULL || cache->valid == NULL) {
    AscCacheFree(cache);
    return -1;
  }
  for (uint32_t i = 0; i < lines; ++i) cache->tags[i] = kInvalidTag;
  return 0;
}

void AscCacheFree(AscCache* cache) {
  free(cache->tags);
  free(cache->valid);
  cache->tags = NULL;
  cache->valid = NULL;
}

/* Whether fill unit `unit` is in the cache (no change to the recency order). */
static int Contains(const AscCache* c, uint64_t unit) {
  const uint64_t line = unit >> (c->line_shift - c->fill_shift);
  const uint32_t bit = 1u << (uint32_t)(unit & ((1u << (c->line_shift - c->fill_shift)) - 1));
  const size_t base = (size_t)(line % c->sets) * c->ways;
  for (uint32_t w = 0; w < c->ways; ++w) {
    if (c->tags[base + w] == line) return (c->valid[base + w] & bit) != 0;
  }
  return 0;
}

/* Reads fill unit `unit` through the cache: 1 when it was there (a hit), 0 when it was read into
 * it (the line allocated in place of the set's least recently used one if its tag was absent).
 * Either way its line becomes the set's most recent. */
static int Touch(AscCache* c, uint64_t unit) {
  const uint64_t line = unit >> (c->line_shift - c->fill_shift);
  const uint32_t bit = 1u << (uint32_t)(unit & ((1u << (c->line_shift - c->fill_shift)) - 1));
  const size_t base = (size_t)(line % c->sets) * c->ways;
  uint64_t* tags = c->tags + base;
  uint32_t* valid = c->valid + base;
  uint32_t w = 0;
  while (w < c->ways && tags[w] != line) ++w;
  uint32_t mask = 0;
  int hit = 0;
  if (w < c->ways) {
    mask = valid[w];
    hit = (mask & bit) != 0;
  } else {
    w = c->ways - 1; /* the least recent line, or an invalid one: untouched lines drift to the end */
  }
  memmove(tags + 1, tags, w * sizeof *tags);
  memmove(valid + 1, valid, w * sizeof *valid);
  tags[0] = line;
  valid[0] = mask | bit;
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
