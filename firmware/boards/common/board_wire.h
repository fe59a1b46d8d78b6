// The board program's wire: answer lines (`m-<key>-[<value>]`), hex, CRC-32 as zlib's, and the
// number parsing of commands, over board.h's UART. Included by board_main.cc only.
#ifndef ASC_BOARD_WIRE_H_
#define ASC_BOARD_WIRE_H_

#include <stdint.h>
#include <string.h>

#include "board.h"

namespace asc_wire {

// --- output -------------------------------------------------------------------------------------

inline void Put(const char* s) { BoardUartWrite(s, strlen(s)); }

inline void PutUnsigned(uint32_t v) {
  char b[11];
  int n = 0;
  do {
    b[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) BoardUartWrite(&b[--n], 1);
}

inline void PutHex(const uint8_t* data, int n) {
  static const char kDigits[] = "0123456789abcdef";
  char b[64];
  int k = 0;
  for (int i = 0; i < n; ++i) {
    b[k++] = kDigits[data[i] >> 4];
    b[k++] = kDigits[data[i] & 15];
    if (k == sizeof(b)) {
      BoardUartWrite(b, k);
      k = 0;
    }
  }
  BoardUartWrite(b, k);
}

inline void PutHex32(uint32_t v) {
  const uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
                        static_cast<uint8_t>(v)};
  PutHex(b, 4);
}

inline void EndLine() { Put("\r\n"); }

// `m-<key>-[<value>]` lines
inline void Line(const char* key, const char* value) {
  Put("m-");
  Put(key);
  Put("-[");
  Put(value);
  Put("]");
  EndLine();
}

inline void LineU(const char* key, uint32_t value) {
  Put("m-");
  Put(key);
  Put("-[");
  PutUnsigned(value);
  Put("]");
  EndLine();
}

// `m-<word>` lines
inline void Bare(const char* word) {
  Put("m-");
  Put(word);
  EndLine();
}

// --- checksums and parsing -------------------------------------------------------------------

// CRC-32 as zlib's crc32() (reflected, polynomial 0xEDB88320), continued from `crc`.
inline uint32_t Crc32(uint32_t crc, const uint8_t* p, int n) {
  crc = ~crc;
  for (int i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses an unsigned number (base 10, or 16 with `hex`) at *s, skipping spaces first; false if none.
inline bool Number(const char** s, uint32_t* v, bool hex = false) {
  while (**s == ' ') ++*s;
  const char* start = *s;
  uint32_t x = 0;
  for (; **s; ++*s) {
    const int d = HexDigit(**s);
    if (d < 0 || (!hex && d > 9)) break;
    x = hex ? (x << 4) | static_cast<uint32_t>(d) : x * 10 + static_cast<uint32_t>(d);
  }
  *v = x;
  return *s != start;
}

inline bool Starts(const char* s, const char* prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

}  // namespace asc_wire

#endif  // ASC_BOARD_WIRE_H_
