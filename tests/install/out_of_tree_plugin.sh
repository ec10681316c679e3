#!/usr/bin/env bash
# usage: out_of_tree_plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { echo "== $*"; }

step "install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"

step "build the example plugin against the installed SDK only"
launcher=()
if command -v ccache > /dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$src/docs/examples/sinh_arcsinh" -B "$work/plugin" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/plugin" -j 2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }

step "the SDK's contract suite on the plugin"
(cd "$work/plugin" && ctest --output-on-failure)

step "the installed runner finds its shipped plugins without environment variables"
env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" plugins > "$work/plugins.txt"
grep -q "$work/prefix/lib/flows/plugins/flows_plugin_basic.so" "$work/plugins.txt" || {
  cat "$work/plugins.txt"; echo "shipped plugins not found under the prefix"; exit 1; }

step "train the plugin from YAML, loaded by name through a relative plugins: entry"
# As the guide has it: the pipeline beside the plugin's build/ folder, run from there.
mkdir "$work/user"
cp "$src/docs/examples/sinh_arcsinh/pipeline.yaml" "$work/user/pipeline.yaml"
ln -s "$work/plugin" "$work/user/build"
(cd "$work/user" && env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" run pipeline.yaml -q -o out)
grep -q '"test": [0-9.-]' "$work/user/out/metrics.json" || {
  cat "$work/user/out/metrics.json"; exit 1; }
test -s "$work/user/out/report.html" || { echo "no report.html"; exit 1; }

step "use the saved model from another folder: the checkpoint knows where its plugin is"
(cd / && env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" sample "$work/user/out/model.flows" \
  -n 10 -o "$work/samples.csv")
test "$(wc -l < "$work/samples.csv")" -eq 11 || { cat "$work/samples.csv"; exit 1; }
(cd / && env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" info "$work/user/out/model.flows") \
  > "$work/info.txt"
grep -q "sinh_arcsinh .*$work/user/build/flows_plugin_sinh_arcsinh.so" "$work/info.txt" || {
  cat "$work/info.txt"; exit 1; }
step "build the transformer-only example plugin against the installed SDK only"
cmake -S "$src/docs/examples/sinh_arcsinh_transformer" -B "$work/transformer" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" \
  > "$work/configure_transformer.log"
cmake --build "$work/transformer" -j 2 > "$work/build_transformer.log" || {
  cat "$work/build_transformer.log"; exit 1; }

step "the SDK's transformer contract on it"
(cd "$work/transformer" && ctest --output-on-failure)

step "train it from YAML as an autoregressive and as a coupling flow, with no more code"
mkdir "$work/transformer_user"
ln -s "$work/transformer" "$work/transformer_user/build"
for kind in autoregressive coupling; do
  cp "$src/docs/examples/sinh_arcsinh_transformer/$kind.yaml" "$work/transformer_user/$kind.yaml"
  (cd "$work/transformer_user" &&
    env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" run "$kind.yaml" -q -o "out_$kind")
  grep -q '"test": [0-9.-]' "$work/transformer_user/out_$kind/metrics.json" || {
    cat "$work/transformer_user/out_$kind/metrics.json"; exit 1; }
  (cd / && env -u FLOWS_PLUGIN_PATH "$work/prefix/bin/flows" sample \
    "$work/transformer_user/out_$kind/model.flows" -n 10 -o "$work/samples_$kind.csv")
  test "$(wc -l < "$work/samples_$kind.csv")" -eq 11 || { cat "$work/samples_$kind.csv"; exit 1; }
done

echo "out-of-tree plugins: built, contract suites passed, trained from YAML (the transformer as" \
  "autoregressive and coupling flows), saved models reused"
