#include "flows/state.hpp"

#include <cmath>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows {

// A parameter kept in a compute order is saved and loaded in its saved
// order, so that checkpoints do not depend on how a layer computes.
void visit_parameters(const ParameterList& params, StateVisitor& visitor) {
  for (Parameter* p : params) {
    if (p->saved_index.empty()) {
      visitor.tensor(p->name, p->value);
      continue;
    }
    Matrix saved = in_saved_order(*p, p->value);
    visitor.tensor(p->name, saved);  // a loader checks the shape
    from_saved_order(*p, saved, p->value);
  }
}

const TensorStore::Entry* TensorStore::find(const std::string& name) const {
  for (const Entry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

void StateSaver::add(const std::string& name, const Matrix& value, bool structure) {
  if (!seen_.insert(name).second)
    throw Error(fmt::format(
        "state tensor '{}' is visited twice; a component must give its tensors distinct names",
        name));
  store_.entries.push_back({name, value, structure});
}

void StateSaver::tensor(const std::string& name, Matrix& value) {
  add(name, value, false);
}

void StateSaver::structure(const std::string& name, const Matrix& value) {
  add(name, value, true);
}

const TensorStore::Entry& StateLoader::entry(const std::string& name, const Matrix& value,
                                             bool structure) {
  const TensorStore::Entry* e = store_.find(name);
  if (e == nullptr)
    throw DataError(fmt::format(
        "{}: has no tensor '{}' (the file was saved from a different model or trainer, or by an "
        "incompatible version of the component)",
        source_, name));
  if (e->value.shape(0) != value.shape(0) || e->value.shape(1) != value.shape(1))
    throw DataError(fmt::format(
        "{}: tensor '{}' is {} x {} in the file, but the model built from "
        "its YAML has {} x {}",
        source_, name, e->value.shape(0), e->value.shape(1), value.shape(0), value.shape(1)));
  if (e->structure != structure)
    throw DataError(fmt::format("{}: tensor '{}' is stored as {}, but the model reads it as {}",
                                source_, name, e->structure ? "structure" : "state",
                                structure ? "structure" : "state"));
  visited_.insert(name);
  return *e;
}

void StateLoader::tensor(const std::string& name, Matrix& value) {
  const Matrix& stored = entry(name, value, false).value;
  for (Index k = 0; k < stored.size(); ++k)
    if (!std::isfinite(stored.flat(k)))
      throw DataError(fmt::format("{}: tensor '{}' has a non-finite entry ({}) at flat index {}",
                                  source_, name, stored.flat(k), k));
  value = stored;
}

void StateLoader::structure(const std::string& name, const Matrix& value) {
  const Matrix& stored = entry(name, value, true).value;
  for (Index k = 0; k < value.size(); ++k)
    if (stored.flat(k) != value.flat(k))
      throw DataError(fmt::format(
          "{}: structure '{}' differs from the one rebuilt from the model's YAML and seed (entry "
          "{}: {} in the file, {} rebuilt); the file was saved by a version of the component "
          "that draws its structure differently",
          source_, name, k, stored.flat(k), value.flat(k)));
}

std::vector<std::string> StateLoader::unvisited(const std::string& prefix) const {
  std::vector<std::string> names;
  for (const TensorStore::Entry& e : store_.entries)
    if (e.name.compare(0, prefix.size(), prefix) == 0 && !visited_.count(e.name))
      names.push_back(e.name);
  return names;
}

void visit_count(StateVisitor& visitor, const std::string& name, Index& count) {
  Matrix value = {{static_cast<Real>(count)}};
  visitor.tensor(name, value);
  const Real v = value(0, 0);
  if (!(v >= 0 && v < 9007199254740992.0) || v != std::floor(v))
    throw DataError(fmt::format("stored count '{}' is {}, not a whole number below 2^53", name, v));
  count = static_cast<Index>(v);
}

Matrix index_row(const std::vector<Index>& indices) {
  Matrix row = xt::empty<Real>({Index{1}, indices.size()});
  for (Index k = 0; k < indices.size(); ++k) row(0, k) = static_cast<Real>(indices[k]);
  return row;
}

}  // namespace flows
