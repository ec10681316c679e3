#pragma once
#include <set>
#include <string>
#include <vector>

#include "flows/export.hpp"
#include "flows/parameter.hpp"
#include "flows/tensor.hpp"

namespace flows {

// Walks the tensors that make up a component's state, for checkpoints. One
// visit_state function both saves and loads (the pattern of serialization
// archives), so what is written and what is read cannot drift apart.
class FLOWS_API StateVisitor {
 public:
  virtual ~StateVisitor() = default;
  // State to keep and restore. Saving copies `value`; loading overwrites it
  // with the stored tensor of that name after checking the shape. A component
  // re-derives its caches and validates after the call, because loading may
  // have changed `value`.
  virtual void tensor(const std::string& name, Matrix& value) = 0;
  // Structure a component rebuilds from its options and seed (orderings,
  // splits). Saved so that loading can verify that the rebuilt component is
  // the one that was saved; loading raises DataError when it differs.
  virtual void structure(const std::string& name, const Matrix& value) = 0;
};

// Visits every parameter, trainable or not, under its name.
FLOWS_API void visit_parameters(const ParameterList& params, StateVisitor& visitor);

// Named tensors in visiting order: what a checkpoint holds.
struct FLOWS_API TensorStore {
  struct Entry {
    std::string name;
    Matrix value;
    bool structure = false;
  };
  std::vector<Entry> entries;
  // The entry called `name`, or null.
  const Entry* find(const std::string& name) const;
};

// Appends every visited tensor to a store. A name visited twice is an Error:
// each component must name its tensors uniquely.
class FLOWS_API StateSaver : public StateVisitor {
 public:
  explicit StateSaver(TensorStore& store) : store_(store) {}
  void tensor(const std::string& name, Matrix& value) override;
  void structure(const std::string& name, const Matrix& value) override;

 private:
  void add(const std::string& name, const Matrix& value, bool structure);
  TensorStore& store_;
  std::set<std::string> seen_;
};

// Restores visited tensors from a store. A missing tensor, a shape that
// differs, or structure that differs is a DataError naming `source` (the
// checkpoint file) and the tensor.
class FLOWS_API StateLoader : public StateVisitor {
 public:
  StateLoader(const TensorStore& store, std::string source)
      : store_(store), source_(std::move(source)) {}
  void tensor(const std::string& name, Matrix& value) override;
  void structure(const std::string& name, const Matrix& value) override;
  // Names in the store that start with `prefix` and that nothing visited.
  std::vector<std::string> unvisited(const std::string& prefix) const;

 private:
  const TensorStore::Entry& entry(const std::string& name, const Matrix& value, bool structure);
  const TensorStore& store_;
  std::string source_;
  std::set<std::string> visited_;
};

// Puts `prefix` in front of every name and passes the call on, so that nested
// components ("bijector2/" + "layer0.w") keep their names apart.
class FLOWS_API ScopedStateVisitor : public StateVisitor {
 public:
  ScopedStateVisitor(StateVisitor& inner, std::string prefix)
      : inner_(inner), prefix_(std::move(prefix)) {}
  void tensor(const std::string& name, Matrix& value) override {
    inner_.tensor(prefix_ + name, value);
  }
  void structure(const std::string& name, const Matrix& value) override {
    inner_.structure(prefix_ + name, value);
  }

 private:
  StateVisitor& inner_;
  std::string prefix_;
};

// A count (steps done, an optimizer's step) as a 1 x 1 tensor named `name`;
// a loaded value that is not a whole number in [0, 2^53) is a DataError.
FLOWS_API void visit_count(StateVisitor& visitor, const std::string& name, Index& count);

// An index list as a 1 x n tensor (indices below 2^53 are exact as doubles).
FLOWS_API Matrix index_row(const std::vector<Index>& indices);

}  // namespace flows
