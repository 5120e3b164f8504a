#!/usr/bin/env bash
# Builds libcrema_c (cargo, dev profile unless PROFILE=release) and the
# caffe_ MEX gateway against it with Octave's mkoctfile; the MEX finds the
# library through its rpath. MATLAB users build the same caffe_.c with `mex`
# (see README: MATLAB and Octave).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
profile=${PROFILE:-dev}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
# CREMA_CARGO_ARGS lets scripts/test repeat its workspace build (same
# features), so the library is not compiled a second time.
# shellcheck disable=SC2086
cargo build ${CREMA_CARGO_ARGS:--p crema-c} --profile "$profile" --manifest-path "$root/Cargo.toml"
lib="$root/target/$dir"
cd "$root/matlab/+caffe/private"
mkoctfile --mex -o caffe_.mex caffe_.c -I"$root/crates/crema-c/include" \
  -L"$lib" -lcrema_c -Wl,-rpath,"$lib"
rm -f caffe_.o
echo "built $PWD/caffe_.mex against $lib/libcrema_c.so"
