// A strict, allocation-free syntax check: is this text one UTF-8 JSON object (RFC 8259)?
// The gateway rejects a datagram whose payload is not a JSON object; devices check before storing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ibp {

bool is_json_object(const uint8_t* text, size_t len);

// Valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool is_valid_utf8(const uint8_t* text, size_t len);

}  // namespace ibp
