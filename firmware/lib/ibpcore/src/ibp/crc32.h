// CRC-32 (IEEE 802.3, reflected, as zlib's crc32) for record and metadata integrity.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ibp {

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

}  // namespace ibp
