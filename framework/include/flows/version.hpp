#pragma once
#include "flows/export.hpp"

namespace flows {

// The SDK's version, "major.minor.patch".
FLOWS_API const char* sdk_version();

}  // namespace flows
