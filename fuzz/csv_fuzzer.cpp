// The CSV reader on arbitrary text, in each header mode.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flows/data/csv.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (flows::CsvHeader mode :
       {flows::CsvHeader::detect, flows::CsvHeader::present, flows::CsvHeader::absent})
    flows::fuzz::run_input("fuzz-input.csv", [&] {
      std::vector<std::string> header;
      flows::parse_csv(text, "fuzz-input.csv", &header, mode);
    });
  return 0;
}
