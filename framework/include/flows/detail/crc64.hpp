#pragma once
// CRC-64/ECMA-182 (Boost.CRC): the digests the ranks of a job compare, the
// same on every machine and build.
#include <boost/crc.hpp>

namespace flows::detail {

using Crc64 = boost::crc_optimal<64, 0x42F0E1EBA9EA3693ULL, 0, 0, false, false>;

}  // namespace flows::detail
