#include "flows/version.hpp"

namespace flows {

const char* sdk_version() {
  return FLOWS_VERSION;
}

}  // namespace flows
